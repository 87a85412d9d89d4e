//! The router: endpoints, the event stream and the page.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{FromRef, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use wa_pairing_store::{
    Change, ChangeStream, ConnectionMethod, Device, DeviceId, DeviceStatus, DeviceStore, NewDevice,
    PairingRequest, Stores,
};

use crate::auth::{AuthConfig, Owner, OwnerFromHeaderOrQuery};
use crate::error::{ApiError, ErrorCode};

/// The router's settings.
///
/// ```
/// use std::time::Duration;
/// use wa_pairing_http::{AuthConfig, HttpConfig};
///
/// let config = HttpConfig::new(AuthConfig::new("https://abcd.supabase.co/auth/v1").hs256("secret"))
///     .keep_alive(Duration::from_secs(15));
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct HttpConfig {
    auth: AuthConfig,
    keep_alive: Duration,
    poll: Duration,
}

impl HttpConfig {
    /// Authentication as given; keep-alives every 15 s; the event stream polls every second
    /// where the store has no change feed.
    ///
    /// How often an owner may start pairing is the store's rule (the owner's pace,
    /// [`DEFAULT_PAIRING_STARTS_PER_MINUTE`](wa_pairing_store::DEFAULT_PAIRING_STARTS_PER_MINUTE)),
    /// the same for every replica and for rows written through Supabase directly: the API
    /// answers its refusal with `429 rate_limited`.
    pub fn new(auth: AuthConfig) -> Self {
        Self {
            auth,
            keep_alive: Duration::from_secs(15),
            poll: Duration::from_secs(1),
        }
    }

    /// How often the event stream sends a keep-alive comment.
    #[must_use]
    pub const fn keep_alive(mut self, every: Duration) -> Self {
        self.keep_alive = every;
        self
    }

    /// How often the event stream looks at the device when the store cannot push changes.
    #[must_use]
    pub const fn poll_interval(mut self, every: Duration) -> Self {
        self.poll = every;
        self
    }
}

/// Shared state of the router's handlers. It gives its [`AuthConfig`] through axum's
/// [`FromRef`], which is all [`Owner`] and [`OwnerFromHeaderOrQuery`] need from a state.
#[derive(Clone)]
pub struct ApiState {
    store: Arc<dyn DeviceStore>,
    auth: AuthConfig,
    /// Reads what owners type, in the deployment's region ([`Stores::phones`]).
    phones: wa_pairing_phone::PhoneParser,
    keep_alive: Duration,
    poll: Duration,
}

impl FromRef<ApiState> for AuthConfig {
    fn from_ref(state: &ApiState) -> Self {
        state.auth.clone()
    }
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// The owner's view of a device: what `get-device-qr` answered, and more. Never contains
/// auth state or lease details.
///
/// # Behavior
///
/// - The pairing code and its expiry are shown only while the device is `waiting_pairing`,
///   the code's expiry lies ahead, and a runner holds the device (its lease has not lapsed):
///   a code is never shown past its expiry, nor after the runner that asked for it is gone.
/// - The QR payload is shown under the same rules but the expiry, which the device record
///   does not carry for QR codes (WhatsApp rotates them every 20-60 s, and the runner
///   replaces or clears the payload each time).
/// - `retry_after` is shown only while it lies ahead; the linked number only while
///   connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DeviceView {
    /// Device id.
    pub id: DeviceId,
    /// The owner's name for it.
    pub device_name: String,
    /// `connecting`, `waiting_pairing`, `connected`, `disconnected` or `failed`.
    pub status: DeviceStatus,
    /// `pairing` or `qr`.
    pub connection_method: ConnectionMethod,
    /// The live code as `XXXX-XXXX`, only while it is valid and its runner holds the device.
    pub pairing_code: Option<String>,
    /// When the live code expires.
    pub pairing_code_expires_at: Option<DateTime<Utc>>,
    /// The live QR payload, only while waiting for a scan and a runner holds the device.
    pub qr_code: Option<String>,
    /// Why the device failed, in words the owner can act on.
    pub error_message: Option<String>,
    /// When trying again is worth it.
    pub retry_after: Option<DateTime<Utc>>,
    /// The number being linked, as E.164 digits (`6281234567890`).
    pub phone_for_pairing: Option<String>,
    /// The linked number, once connected, as E.164 digits.
    pub phone_number: Option<String>,
    /// When a session last connected.
    pub last_connected_at: Option<DateTime<Utc>>,
    /// Whether the device holds a link (it can be resumed without a new code).
    pub linked: bool,
    /// When the device was created (the page lists the newest first).
    pub created_at: DateTime<Utc>,
}

impl DeviceView {
    /// The view of `d` at `now`.
    pub fn of(d: &Device, now: DateTime<Utc>) -> Self {
        // A code or QR belongs to the WhatsApp connection of the runner that asked for it:
        // once its lease lapses (the runner is gone), so is the code.
        let waiting = d.status == DeviceStatus::WaitingPairing && !d.lease_is_free(now);
        let live = waiting && d.live_pairing_code(now).is_some();
        Self {
            id: d.id,
            device_name: d.device_name.clone(),
            status: d.status,
            connection_method: d.connection_method,
            pairing_code: d
                .pairing_code
                .as_ref()
                .filter(|_| live)
                .map(ToString::to_string),
            pairing_code_expires_at: d.pairing_code_expires_at.filter(|_| live),
            qr_code: d.qr_code.clone().filter(|_| waiting),
            error_message: d.error_message.clone(),
            retry_after: d.retry_after.filter(|t| *t > now),
            phone_for_pairing: d.phone_for_pairing.as_ref().map(|p| p.digits().to_owned()),
            phone_number: d
                .phone_number
                .as_ref()
                .filter(|_| d.status == DeviceStatus::Connected)
                .map(|p| p.digits().to_owned()),
            last_connected_at: d.last_connected_at,
            linked: d.phone_number.is_some(),
            created_at: d.created_at,
        }
    }
}

/// The next moment after `now` at which [`DeviceView::of`] changes with no change to `d`:
/// the code's expiry, the lease's lapse while a code or QR is shown, the end of
/// `retry_after`.
fn next_lapse(d: &Device, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let view = DeviceView::of(d, now);
    let shown = view.pairing_code.is_some() || view.qr_code.is_some();
    [
        view.pairing_code_expires_at,
        d.lease_expires_at.filter(|_| shown),
        view.retry_after,
    ]
    .into_iter()
    .flatten()
    .filter(|t| *t > now)
    .min()
}

/// The Tokio instant at which the wall clock reads `at` (now if it has passed, at most a
/// year ahead).
fn instant_at(at: DateTime<Utc>) -> tokio::time::Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    let left = (at - Utc::now()).to_std().unwrap_or_default().min(YEAR);
    tokio::time::Instant::now() + left
}

#[derive(Deserialize)]
struct CreateBody {
    device_name: String,
    #[serde(default)]
    connection_method: Option<ConnectionMethod>,
    #[serde(default)]
    phone_number: Option<String>,
}

#[derive(Deserialize)]
struct PairBody {
    #[serde(default)]
    phone_number: Option<String>,
    #[serde(default)]
    connection_method: Option<ConnectionMethod>,
}

/// The owner-facing router: the API under `/api` and the device page at `/`.
///
/// | method and path | what |
/// |---|---|
/// | `GET /` | the device page |
/// | `POST /api/devices` | create a device `{device_name, connection_method?, phone_number?}`, and start pairing it when given a number or `"qr"` |
/// | `GET /api/devices` | my devices |
/// | `GET /api/devices/{id}` | one device ([`DeviceView`]) |
/// | `POST /api/devices/{id}/pairing` | start pairing `{phone_number}` (or `{connection_method: "qr"}`) |
/// | `POST /api/devices/{id}/refresh` | ask for a fresh code |
/// | `POST /api/devices/{id}/disconnect` | close the session, keep the link |
/// | `POST /api/devices/{id}/resume` | bring a linked, disconnected device back (no code) |
/// | `POST /api/devices/{id}/unlink` | remove the companion from the account and wipe its keys |
/// | `DELETE /api/devices/{id}` | delete the device; a linked one is unlinked first (see [`holds_link`]) |
/// | `GET /api/devices/{id}/events` | server-sent `device` events as it changes, `expired` last when the token expires |
/// | `GET /api/devices/{id}/qr.svg` | the live QR drawn as SVG (QR method) |
///
/// `?access_token=` is accepted by the event stream and the QR image only (browsers cannot
/// send headers there); every other route wants the `Authorization` header. The event
/// stream ends when its token stops being accepted.
///
/// Every answer carries `Content-Security-Policy` (only the page's own script, style, images
/// and API; no framing), `Referrer-Policy: no-referrer`, `X-Content-Type-Options: nosniff`
/// and `X-Frame-Options: DENY`; every `/api` answer (codes and QR payloads among them)
/// carries `Cache-Control: no-store`.
///
/// Built inside a Tokio runtime, it starts fetching the [JWKS](AuthConfig::jwks_url) in
/// the background.
///
/// The router takes the same [`Stores`] as the runner (it uses the devices).
///
/// ```
/// use wa_pairing_http::{AuthConfig, HttpConfig, router};
/// use wa_pairing_store::MemoryStore;
///
/// let stores = MemoryStore::new().stores().build();
/// let auth = AuthConfig::new("https://abcd.supabase.co/auth/v1").hs256("the project's JWT secret");
/// let app: axum::Router = router(&stores, HttpConfig::new(auth));
/// # let _ = app;
/// ```
pub fn router(stores: &Stores, config: HttpConfig) -> axum::Router {
    config.auth.prefetch();
    let state = ApiState {
        store: Arc::clone(stores.devices()),
        auth: config.auth,
        phones: *stores.phones(),
        keep_alive: config.keep_alive,
        poll: config.poll,
    };
    let api = axum::Router::new()
        .route("/api/devices", post(create).get(list))
        .route("/api/devices/{id}", get(one).delete(delete))
        .route("/api/devices/{id}/pairing", post(start_pairing))
        .route("/api/devices/{id}/refresh", post(refresh))
        .route("/api/devices/{id}/disconnect", post(disconnect))
        .route("/api/devices/{id}/resume", post(resume))
        .route("/api/devices/{id}/unlink", post(unlink))
        .route("/api/devices/{id}/events", get(events))
        .route("/api/devices/{id}/qr.svg", get(qr_svg))
        .layer(axum::middleware::map_response(no_store));
    axum::Router::new()
        .route("/", get(page))
        .route("/assets/app.js", get(script))
        .route("/assets/app.css", get(style))
        .merge(api)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// The page's policy: its own script, style, images (the QR) and API, nothing inline,
/// nothing else, and no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// API answers carry codes, QR payloads and numbers: never kept by a browser or a proxy.
async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn page() -> impl IntoResponse {
    Html(include_str!("../assets/index.html"))
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../assets/app.js"),
    )
}

async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../assets/app.css"),
    )
}

fn parse_id(raw: &str) -> Result<DeviceId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found())
}

/// The device, if `owner` owns it; 404 otherwise (never revealing that it exists).
async fn owned(state: &ApiState, owner: Owner, raw: &str) -> Result<Device, ApiError> {
    let id = parse_id(raw)?;
    let d = state.store.get(id).await?;
    if d.user_id == owner.0 {
        Ok(d)
    } else {
        Err(ApiError::not_found())
    }
}

fn view(d: &Device) -> Json<DeviceView> {
    Json(DeviceView::of(d, Utc::now()))
}

async fn create(
    State(state): State<ApiState>,
    owner: Owner,
    body: Result<Json<CreateBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<DeviceView>), ApiError> {
    let Json(body) = body.map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidInput,
            format!(
                "the body must be JSON like {{\"device_name\": \"Shop phone\"}}: {}",
                e.body_text()
            ),
        )
    })?;
    // Everything is checked before anything is created: a refused name or number leaves
    // no device behind.
    wa_pairing_store::validate_device_name(&body.device_name).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidName,
            e.message(),
        )
    })?;
    let method = body.connection_method.unwrap_or_default();
    let request = match (method, body.phone_number) {
        (ConnectionMethod::Qr, _) => Some(PairingRequest::Qr),
        (ConnectionMethod::Pairing, Some(number)) => Some(PairingRequest::Code {
            phone: parse_phone(&state, &number)?,
        }),
        (ConnectionMethod::Pairing, None) => None,
    };
    let d = state
        .store
        .create(NewDevice::new(owner.0, body.device_name).method(method))
        .await
        .map_err(|e| match e.kind() {
            wa_pairing_store::ErrorKind::InvalidInput => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidName,
                e.message(),
            ),
            _ => e.into(),
        })?;
    let Some(request) = request else {
        return Ok((StatusCode::CREATED, view(&d)));
    };
    match state.store.start_pairing(d.id, request).await {
        Ok(started) => Ok((StatusCode::CREATED, view(&started))),
        Err(e) => {
            // The owner's pace (or the store) refused the start: the device is taken back,
            // so that a retry does not leave one more behind.
            if let Err(cleanup) = state.store.delete(d.id).await {
                tracing::warn!(device = %d.id, error = %cleanup, "could not remove a device whose pairing was refused");
            }
            Err(e.into())
        }
    }
}

/// A number as the owner typed it, or `invalid_phone` saying what to write.
fn parse_phone(
    state: &ApiState,
    number: &str,
) -> Result<wa_pairing_store::phone::PhoneNumber, ApiError> {
    state.phones.parse(number).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidPhone,
            e.to_string(),
        )
    })
}

async fn list(
    State(state): State<ApiState>,
    owner: Owner,
) -> Result<Json<Vec<DeviceView>>, ApiError> {
    let now = Utc::now();
    let devices = state.store.list_for_user(owner.0).await?;
    Ok(Json(
        devices.iter().map(|d| DeviceView::of(d, now)).collect(),
    ))
}

async fn one(
    State(state): State<ApiState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<Json<DeviceView>, ApiError> {
    Ok(view(&owned(&state, owner, &id).await?))
}

async fn start_pairing(
    State(state): State<ApiState>,
    owner: Owner,
    Path(id): Path<String>,
    body: Result<Json<PairBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<DeviceView>), ApiError> {
    let Json(body) = body.map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidInput,
            format!(
                "the body must be JSON like {{\"phone_number\": \"0812-3456-7890\"}}: {}",
                e.body_text()
            ),
        )
    })?;
    let request = match (body.connection_method, body.phone_number) {
        (Some(ConnectionMethod::Qr), _) => PairingRequest::Qr,
        (_, Some(number)) => PairingRequest::Code {
            phone: parse_phone(&state, &number)?,
        },
        (_, None) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidPhone,
                "give the WhatsApp number to link as phone_number, for example 0812-3456-7890 or +62 812 3456 7890",
            ));
        }
    };
    let d = owned(&state, owner, &id).await?;
    let d = state.store.start_pairing(d.id, request).await?;
    Ok((StatusCode::ACCEPTED, view(&d)))
}

async fn refresh(
    State(state): State<ApiState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<DeviceView>), ApiError> {
    let d = owned(&state, owner, &id).await?;
    let d = state.store.refresh(d.id).await?;
    Ok((StatusCode::ACCEPTED, view(&d)))
}

async fn disconnect(
    State(state): State<ApiState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<Json<DeviceView>, ApiError> {
    let d = owned(&state, owner, &id).await?;
    Ok(view(&state.store.disconnect(d.id).await?))
}

async fn resume(
    State(state): State<ApiState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<DeviceView>), ApiError> {
    let d = owned(&state, owner, &id).await?;
    Ok((StatusCode::ACCEPTED, view(&state.store.resume(d.id).await?)))
}

async fn unlink(
    State(state): State<ApiState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<DeviceView>), ApiError> {
    let d = owned(&state, owner, &id).await?;
    Ok((StatusCode::ACCEPTED, view(&state.store.unlink(d.id).await?)))
}

/// Whether `d` holds a link to a WhatsApp account: a linked number, `connected`, or being
/// unlinked. Deleting such a row would leave the companion listed on the phone, so the API
/// unlinks it first and the database refuses an end user's delete of it (the migration
/// `20261209000000_wa_pairing_owner_delete` holds the same rule).
pub fn holds_link(d: &Device) -> bool {
    d.phone_number.is_some()
        || matches!(d.status, DeviceStatus::Connected | DeviceStatus::Unlinking)
}

/// How long a delete waits for the runner to unlink the device before it gives up; the
/// device then stays (unlinked, or still unlinking) for its owner to delete again.
const UNLINK_BEFORE_DELETE: Duration = Duration::from_secs(600);

async fn delete(
    State(state): State<ApiState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let d = owned(&state, owner, &id).await?;
    if !holds_link(&d) {
        state.store.delete(d.id).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    // Linked: WhatsApp must be told first (a runner logs the companion out), then the row
    // goes; the owner follows the device to `gone`.
    let d = if d.status == DeviceStatus::Unlinking {
        d
    } else {
        state.store.unlink(d.id).await?
    };
    tokio::spawn(remove_once_unlinked(
        Arc::clone(&state.store),
        d.id,
        state.poll,
    ));
    Ok((StatusCode::ACCEPTED, view(&d)).into_response())
}

/// Deletes `id` once a runner has unlinked it (`disconnected`, no link left). Gives up when
/// the device changes otherwise (its owner linked it again), disappears, or stays unlinking
/// past [`UNLINK_BEFORE_DELETE`].
async fn remove_once_unlinked(store: Arc<dyn DeviceStore>, id: DeviceId, poll: Duration) {
    let mut feed = store.subscribe().await.ok().flatten();
    let give_up = tokio::time::Instant::now() + UNLINK_BEFORE_DELETE;
    loop {
        match store.get(id).await {
            Ok(d) if d.status == DeviceStatus::Unlinking => {}
            Ok(d) if d.status == DeviceStatus::Disconnected && !holds_link(&d) => {
                match store.delete(id).await {
                    Ok(()) => tracing::info!(device = %id, "deleted once unlinked"),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        tracing::warn!(device = %id, error = %e, "could not delete an unlinked device; its owner can delete it again");
                    }
                }
                return;
            }
            Ok(_) => {
                tracing::info!(device = %id, "the device changed after its unlink; not deleted");
                return;
            }
            Err(e) if e.is_not_found() => return,
            Err(e) => {
                tracing::warn!(device = %id, error = %e, "cannot read a device waiting to be deleted; retrying");
            }
        }
        if tokio::time::Instant::now() >= give_up {
            tracing::warn!(device = %id, "the device was not unlinked in time; not deleted");
            return;
        }
        let sweep = tokio::time::sleep(if feed.is_some() {
            poll.max(Duration::from_secs(5))
        } else {
            poll
        });
        let feed_ended = match &mut feed {
            Some(changes) => tokio::select! {
                c = changes.next() => c.is_none(),
                () = sweep => false,
            },
            None => {
                sweep.await;
                false
            }
        };
        if feed_ended {
            feed = None;
        }
    }
}

async fn qr_svg(
    State(state): State<ApiState>,
    OwnerFromHeaderOrQuery(verified): OwnerFromHeaderOrQuery,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let d = owned(&state, Owner(verified.user), &id).await?;
    let payload = DeviceView::of(&d, Utc::now()).qr_code.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NoQr,
            "this device shows no QR code now",
        )
    })?;
    let code = qrcode::QrCode::new(payload.as_bytes()).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "the QR code could not be drawn",
        )
    })?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(256, 256)
        .build();
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    ))
}

struct Watch {
    store: Arc<dyn DeviceStore>,
    id: DeviceId,
    feed: Option<ChangeStream>,
    tick: tokio::time::Interval,
    /// When the last view sent changes by itself (a code expires, a lease lapses).
    lapse: Option<tokio::time::Instant>,
    last: Option<String>,
    done: bool,
}

impl Watch {
    /// Waits for a change that concerns this device, a tick, or the moment the last view
    /// sent stops being true.
    async fn wait(&mut self) {
        let lapse = async {
            match self.lapse {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(lapse);
        let Some(feed) = &mut self.feed else {
            tokio::select! {
                _ = self.tick.tick() => {}
                () = &mut lapse => {}
            }
            return;
        };
        loop {
            tokio::select! {
                c = feed.next() => match c {
                    Some(Change::Device(id)) if id != self.id => {}
                    Some(_) => return,
                    None => {
                        self.feed = None;
                        return;
                    }
                },
                _ = self.tick.tick() => return,
                () = &mut lapse => return,
            }
        }
    }

    /// The next view that differs from the last one sent (or `gone`).
    async fn next_event(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        loop {
            if self.last.is_some() {
                self.wait().await;
            }
            match self.store.get(self.id).await {
                Ok(d) => {
                    let now = Utc::now();
                    // A little after the moment, so that the view has changed by then.
                    self.lapse =
                        next_lapse(&d, now).map(|at| instant_at(at) + Duration::from_millis(20));
                    let json = serde_json::to_string(&DeviceView::of(&d, now)).ok()?;
                    if self.last.as_deref() != Some(json.as_str()) {
                        self.last = Some(json.clone());
                        return Some(Event::default().event("device").data(json));
                    }
                }
                Err(e) if e.is_not_found() => {
                    self.done = true;
                    return Some(Event::default().event("gone").data("{}"));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the event stream cannot read the device; retrying");
                    if self.last.is_none() {
                        self.last = Some(String::new());
                    }
                }
            }
        }
    }
}

/// The last event of a stream whose token stopped being accepted.
fn expired_event() -> Event {
    let body = serde_json::json!({"error": {
        "code": ErrorCode::SessionExpired,
        "message": "the access token has expired: sign in again, then reopen the event stream",
    }});
    Event::default().event("expired").data(body.to_string())
}

async fn events(
    State(state): State<ApiState>,
    OwnerFromHeaderOrQuery(verified): OwnerFromHeaderOrQuery,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let d = owned(&state, Owner(verified.user), &id).await?;
    // The stream lives exactly as long as its token would be accepted at the door.
    let deadline = instant_at(verified.expires_at) + state.auth.leeway_duration();
    let feed = state.store.subscribe().await.ok().flatten();
    // With a change feed the tick is only a safety sweep.
    let every = if feed.is_some() {
        state.poll.max(Duration::from_secs(5))
    } else {
        state.poll
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let watch = Watch {
        store: state.store.clone(),
        id: d.id,
        feed,
        tick,
        lapse: None,
        last: None,
        done: false,
    };
    let stream = futures::stream::unfold(Some(watch), move |watch| async move {
        let mut w = watch?;
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(deadline) => Some((Ok(expired_event()), None)),
            e = w.next_event() => e.map(|e| (Ok(e), Some(w))),
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(state.keep_alive)))
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use wa_pairing_store::UserId;
    use wa_pairing_store::code::PairingCode;

    use super::*;

    /// A device waiting with a code that expires in `code_in` s, leased for `lease_in` s.
    fn waiting(now: DateTime<Utc>, code_in: i64, lease_in: Option<i64>) -> Device {
        let mut d = Device::new_unchecked(
            DeviceId::random(),
            UserId::random(),
            "Toko".into(),
            DeviceStatus::WaitingPairing,
            now,
        );
        d.pairing_code = Some(PairingCode::parse("ABCD-EFGH").unwrap());
        d.pairing_code_expires_at = Some(now + TimeDelta::seconds(code_in));
        d.qr_code = Some("2@abc".into());
        if let Some(s) = lease_in {
            d.lease_owner = Some("runner".into());
            d.lease_expires_at = Some(now + TimeDelta::seconds(s));
        }
        d
    }

    #[test]
    fn a_code_or_qr_is_shown_only_while_valid_and_held() {
        let now = Utc::now();
        // (code expires in, lease lapses in, code shown, QR shown, next change in)
        let cases = [
            (60, Some(20), true, true, Some(20)),
            (10, Some(20), true, true, Some(10)),
            (-1, Some(20), false, true, Some(20)),
            (60, Some(-1), false, false, None),
            (60, None, false, false, None),
        ];
        for (code_in, lease_in, code, qr, next) in cases {
            let d = waiting(now, code_in, lease_in);
            let v = DeviceView::of(&d, now);
            let what = format!("code in {code_in} s, lease in {lease_in:?} s");
            assert_eq!(v.pairing_code.is_some(), code, "{what}");
            assert_eq!(v.pairing_code_expires_at.is_some(), code, "{what}");
            assert_eq!(v.qr_code.is_some(), qr, "{what}");
            assert_eq!(
                next_lapse(&d, now),
                next.map(|s| now + TimeDelta::seconds(s)),
                "{what}"
            );
        }
        // Not waiting: nothing shown, whatever the record holds.
        let mut d = waiting(now, 60, Some(20));
        d.status = DeviceStatus::Connecting;
        let v = DeviceView::of(&d, now);
        assert!(v.pairing_code.is_none() && v.qr_code.is_none());
        assert_eq!(next_lapse(&d, now), None);
    }
}
