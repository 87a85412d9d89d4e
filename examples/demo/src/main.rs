//! The wa-pairing demo: links a WhatsApp device end to end, offline.
//!
//! It starts the offline WhatsApp simulator, an in-memory store and a runner with the real
//! `whatsapp-rust` client, creates a device for a phone number, shows the pairing code the
//! way its owner would see it, lets the simulated phone type it, and once the device is
//! linked sends one message through the live session to another simulated phone and shows
//! the reply arriving; it exits 0 when all of that worked. `--fault` scripts what a user sees
//! when things go wrong.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use wa_pairing_runner::{LiveSessions, Runner, RunnerConfig};
use wa_pairing_sim::{Refusal, Sim, SimConfig};
use wa_pairing_store::{
    Change, ConnectionMethod, DeviceStatus, DeviceStore, Keyring, MemoryStore, NewDevice,
    PairingRequest, UserId,
};
use wa_pairing_whatsapp::{IncomingText, WhatsAppConfig, WhatsAppSession};

mod display;
mod serve;

const HELP: &str = "wa-pairing-demo: link a WhatsApp device end to end, offline

USAGE:
    wa-pairing-demo [PHONE] [--fault FAULT] [--method code|qr]
    wa-pairing-demo --serve [ADDR]

PHONE is the number to link, written any way a person would (default 0812-3456-7890,
read as Indonesian). Nothing leaves this machine: WhatsApp is simulated.

FAULTS (what the owner sees when things go wrong):
    rate-limit       WhatsApp refuses the code request with 429 and a 5-minute backoff
    throttled        WhatsApp's per-number limit (400 with a backoff)
    forbidden        WhatsApp refuses with 403 (not retried)
    not-available    pairing codes are not available for the account (452)
    server-error     one 500 refusal: retried, then the code arrives
    wrong-code       the person mistypes the code once, then types it right

OPTIONS:
    --method code|qr link with a pairing code (default) or a QR code: with qr the demo
                     draws the QR in the terminal and the phone of PHONE scans it
    --serve [ADDR]   serve the device page (wa-pairing-http) against the simulator on ADDR
                     (default 127.0.0.1:8080) and link devices from a browser; the
                     simulated phone types each code shown a few seconds later
    -h, --help       print this help";

/// Another simulated account, which the linked device writes to once it is linked.
const FRIEND: &str = "+62 813-1111-2222";

/// How long the demo waits for each step of the message exchange.
const MESSAGE_STEP: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    RateLimit,
    Throttled,
    Forbidden,
    NotAvailable,
    ServerError,
    WrongCode,
}

impl Fault {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "rate-limit" => Self::RateLimit,
            "throttled" => Self::Throttled,
            "forbidden" => Self::Forbidden,
            "not-available" => Self::NotAvailable,
            "server-error" => Self::ServerError,
            "wrong-code" => Self::WrongCode,
            _ => return None,
        })
    }

    fn refusal(self) -> Option<(Refusal, Option<u32>)> {
        let five_minutes = Some(Duration::from_secs(300));
        Some(match self {
            Self::RateLimit => (
                Refusal::RateOverlimit {
                    backoff: five_minutes,
                },
                None,
            ),
            Self::Throttled => (
                Refusal::BadRequest {
                    backoff: five_minutes,
                },
                None,
            ),
            Self::Forbidden => (Refusal::Forbidden, None),
            Self::NotAvailable => (Refusal::FeatureNotAvailable, None),
            Self::ServerError => (Refusal::InternalServerError, Some(1)),
            Self::WrongCode => return None,
        })
    }
}

struct Args {
    phone: String,
    qr: bool,
    fault: Option<Fault>,
    serve: Option<std::net::SocketAddr>,
}

fn args() -> Result<Option<Args>, String> {
    let mut phone = None;
    let mut fault = None;
    let mut qr = false;
    let mut serve = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--fault" => {
                let name = it.next().ok_or("--fault needs a name; see --help")?;
                fault = Some(
                    Fault::parse(&name)
                        .ok_or_else(|| format!("unknown fault {name:?}; see --help"))?,
                );
            }
            "--method" => match it.next().as_deref() {
                Some("code") => qr = false,
                Some("qr") => qr = true,
                _ => return Err("--method takes code or qr; see --help".into()),
            },
            "--serve" => {
                let addr = it.next().unwrap_or_else(|| "127.0.0.1:8080".to_owned());
                serve = Some(addr.parse().map_err(|_| {
                    format!("--serve takes host:port, like 127.0.0.1:8080, not {addr:?}")
                })?);
            }
            other if other.starts_with("--") => {
                return Err(format!("unknown option {other:?}; see --help"));
            }
            other => phone = Some(other.to_owned()),
        }
    }
    Ok(Some(Args {
        phone: phone.unwrap_or_else(|| "0812-3456-7890".to_owned()),
        qr,
        fault,
        serve,
    }))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal: never escape codes in a file or a pipe.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .init();
    let ui = display::Display::new();
    let args = match args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            ui.fail(&e);
            return ExitCode::from(2);
        }
    };
    if let Some(addr) = args.serve {
        return match serve::serve(&ui, addr).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                ui.fail(&e);
                ExitCode::FAILURE
            }
        };
    }
    match tokio::time::timeout(Duration::from_secs(180), run(&ui, args)).await {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => ExitCode::FAILURE,
        Ok(Err(e)) => {
            ui.fail(&e);
            ExitCode::FAILURE
        }
        Err(_) => {
            ui.fail("the demo did not finish within 3 minutes");
            ExitCode::FAILURE
        }
    }
}

/// Runs the whole flow; `Ok(true)` once linked, `Ok(false)` when the device failed.
#[allow(clippy::too_many_lines)]
async fn run(ui: &display::Display, args: Args) -> Result<bool, String> {
    // What the owner types is validated before anything else happens.
    let phone = wa_pairing_phone::parse(&args.phone).map_err(|e| e.to_string())?;
    ui.step(
        "✓",
        &format!(
            "phone number {} ({} line)",
            phone.redacted(),
            phone.number_type()
        ),
    );

    let sim = Sim::start(SimConfig::default())
        .await
        .map_err(|e| e.to_string())?;
    ui.step("✓", &format!("offline WhatsApp simulator on {}", sim.url()));
    let sim_phone = sim.phone(phone.digits());
    if let Some((refusal, times)) = args.fault.and_then(Fault::refusal) {
        sim_phone.refuse_code_requests(refusal, times);
        ui.detail(&format!(
            "scripted fault: {:?}",
            args.fault.unwrap_or(Fault::WrongCode)
        ));
    }

    let store = MemoryStore::new();
    let (stop, runner, sessions) = start_runner(&sim, &store)?;
    ui.step(
        "✓",
        "runner started (in-memory store, auth state encrypted at rest)",
    );

    let mut feed = store
        .subscribe()
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the in-memory store has a change feed")?;
    let (method, request) = if args.qr {
        (ConnectionMethod::Qr, PairingRequest::Qr)
    } else {
        (
            ConnectionMethod::Pairing,
            PairingRequest::Code {
                phone: phone.clone(),
            },
        )
    };
    let device = store
        .create(NewDevice::new(UserId::random(), "Demo phone").method(method))
        .await
        .map_err(|e| e.to_string())?;
    store
        .start_pairing(device.id, request)
        .await
        .map_err(|e| e.to_string())?;
    ui.step(
        "…",
        "device created; owner pressed \"connect\" (status: connecting)",
    );

    let mut shown = None;
    let mut shown_qr = None;
    let mut typed_wrong = false;
    let linked = loop {
        let d = store.get(device.id).await.map_err(|e| e.to_string())?;
        match d.status {
            DeviceStatus::WaitingPairing if d.qr_code.is_some() && d.qr_code != shown_qr => {
                shown_qr.clone_from(&d.qr_code);
                let payload = d.qr_code.unwrap_or_default();
                ui.step("✓", "WhatsApp issued a QR code (status: waiting_pairing)");
                let drawn = qrcode::QrCode::new(payload.as_bytes())
                    .map_err(|e| e.to_string())?
                    .render::<qrcode::render::unicode::Dense1x2>()
                    .quiet_zone(true)
                    .build();
                println!("{drawn}");
                ui.step("…", "the simulated phone scans it");
                sim_phone
                    .scan_qr(&payload)
                    .await
                    .map_err(|e| format!("the phone says: {e}"))?;
                ui.step("✓", "the phone accepted the QR code");
            }
            DeviceStatus::WaitingPairing if d.pairing_code.is_some() && d.pairing_code != shown => {
                shown = d.pairing_code;
                let code = d.pairing_code.map(|c| c.to_string()).unwrap_or_default();
                let valid = d
                    .pairing_code_expires_at
                    .map_or(0, |t| (t - chrono::Utc::now()).num_seconds().max(0));
                ui.step(
                    "✓",
                    "WhatsApp issued a pairing code (status: waiting_pairing)",
                );
                ui.code(&code, u64::try_from(valid).unwrap_or(0));
                let typing = if args.fault == Some(Fault::WrongCode) && !typed_wrong {
                    typed_wrong = true;
                    let wrong: String = code
                        .chars()
                        .map(|c| match c {
                            '-' => '-',
                            'A' => 'B',
                            _ => 'A',
                        })
                        .collect();
                    ui.step("…", &format!("the simulated phone types {wrong} (a typo)"));
                    wrong
                } else {
                    ui.step("…", &format!("the simulated phone types {code}"));
                    code.clone()
                };
                match sim_phone.enter_code(&typing).await {
                    Ok(()) => ui.step("✓", "the phone accepted the code"),
                    Err(e) => {
                        ui.fail(&format!("the phone says: {e}"));
                        ui.step("…", "typing it again, correctly");
                        sim_phone
                            .enter_code(&code)
                            .await
                            .map_err(|e| e.to_string())?;
                        ui.step("✓", "the phone accepted the code");
                    }
                }
            }
            DeviceStatus::Connected => {
                let number = d
                    .phone_number
                    .map(|n| n.redacted().to_string())
                    .unwrap_or_default();
                ui.step("✓", &format!("linked! status: connected, as {number}"));
                break true;
            }
            DeviceStatus::Failed => {
                ui.fail("the device failed (status: failed); the owner reads:");
                ui.detail(&format!("\"{}\"", d.error_message.unwrap_or_default()));
                if let Some(at) = d.retry_after {
                    ui.detail(&format!("retry_after: {} UTC", at.format("%H:%M:%S")));
                }
                ui.detail(&format!(
                    "WhatsApp saw {} code request(s) for this number: no request storm",
                    sim.counters().code_requests_for(phone.digits())
                ));
                break false;
            }
            _ => {}
        }
        // Wait for the next change of this device (never a sleep).
        loop {
            match feed.next().await {
                Some(Change::Device(id)) if id == device.id => break,
                Some(Change::Resync) => break,
                Some(_) => {}
                None => return Err("the change feed ended".into()),
            }
        }
    };

    if linked {
        exchange_messages(ui, &sim, &sessions, device.id, &phone).await?;
    }

    let _ = stop.send(());
    let summary = runner.await.map_err(|e| e.to_string())?;
    ui.step(
        "✓",
        &format!("runner stopped; {} lease(s) released", summary.released),
    );
    sim.shutdown().await;
    Ok(linked)
}

/// What the application does with a freshly linked device: it takes the live session the
/// runner offers, sends a message to another simulated phone, and hears the reply.
async fn exchange_messages(
    ui: &display::Display,
    sim: &Sim,
    sessions: &LiveSessions,
    device: wa_pairing_store::DeviceId,
    owner: &wa_pairing_phone::PhoneNumber,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + MESSAGE_STEP;
    let live = loop {
        if let Some(live) = sessions.get(device) {
            break live;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err("the runner never offered the linked session".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let wa = WhatsAppSession::of(&live).map_err(|e| e.to_string())?;
    let mut events = wa.events();
    let friend = wa_pairing_phone::parse(FRIEND).map_err(|e| e.to_string())?;
    // The friend has WhatsApp: their account exists before anyone writes to it.
    let friend_phone = sim.phone(friend.digits());
    let sent = wa
        .send_text(&friend, "Halo! This number is now linked to wa-pairing.")
        .await
        .map_err(|e| e.to_string())?;
    ui.step(
        "✓",
        &format!(
            "the application sent a message to {} through the live session",
            friend.redacted()
        ),
    );
    let got = friend_phone
        .wait_for_message(MESSAGE_STEP, |m| m.id == sent.id)
        .await
        .map_err(|e| e.to_string())?;
    ui.step(
        "✓",
        &format!(
            "its phone decrypted it (Signal {}): \"{}\"",
            got.enc.wire(),
            got.text.unwrap_or_default()
        ),
    );
    friend_phone
        .send_text(owner.digits(), "Halo juga! Got it.")
        .await
        .map_err(|e| e.to_string())?;
    let reply = tokio::time::timeout(MESSAGE_STEP, async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(t) = IncomingText::from_event(&event)
                        .into_iter()
                        .find(|t| !t.from_me)
                    {
                        return Ok(t);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .map_err(|_| "the reply never reached the application".to_owned())??;
    ui.step(
        "✓",
        &format!(
            "the reply from {} arrived through the session: \"{}\"",
            reply.chat_redacted(),
            reply.text
        ),
    );
    Ok(())
}

/// A running runner: the channel that stops it, its task, and its live sessions.
pub(crate) type Started = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<wa_pairing_runner::RunSummary>,
    LiveSessions,
);

/// A runner with the real WhatsApp client pointed at `sim`, over `store` (auth state sealed
/// with a fresh key); stop it by sending on the returned channel.
pub(crate) fn start_runner(sim: &Sim, store: &MemoryStore) -> Result<Started, String> {
    let (keyring, _) = Keyring::generate(1);
    let stores = store.stores().encrypt(keyring).build();
    let connector = WhatsAppConfig::new()
        .server_url(sim.url())
        .push_name("wa-pairing demo")
        .build()
        .map_err(|e| e.to_string())?;
    let config = RunnerConfig::default()
        .instance_id("demo-runner")
        .claim_interval(Duration::from_secs(1))
        .lease_for(Duration::from_secs(20))
        .heartbeat(Duration::from_secs(5));
    let runner = Runner::new(stores, Arc::new(connector), config).map_err(|e| e.to_string())?;
    let sessions = runner.sessions();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(runner.run(async {
        let _ = stopped.await;
    }));
    Ok((stop, runner, sessions))
}
