// The device page: no build step, no dependencies. Talks to /api with the Supabase access
// token (from #access_token=... in the URL, or typed in once), and follows one device over
// server-sent events. Every word an owner reads is in Indonesian and English; API errors
// are shown by their code, from the table below, never as the server's English message.
"use strict";

const $ = (id) => document.getElementById(id);
let token = null;
let current = null;
let source = null;
let timer = null;
// Devices this page asked to delete and that are being unlinked first.
const removing = new Set();

// What the owner reads for each error code the API can return (a test checks that every
// code has both texts). "unknown" is for a code this page does not know.
const ERROR_TEXTS = /* error-texts */ {
  "unauthorized": {"id": "Token akses tidak berlaku. Silakan masuk lagi.", "en": "The access token is not valid. Sign in again."},
  "session_expired": {"id": "Sesi Anda sudah berakhir. Silakan masuk lagi.", "en": "Your session expired. Sign in again."},
  "not_found": {"id": "Perangkat ini sudah tidak ada.", "en": "This device no longer exists."},
  "invalid_input": {"id": "Permintaan tidak lengkap. Periksa isian, lalu coba lagi.", "en": "The request is incomplete. Check what you entered, then try again."},
  "invalid_name": {"id": "Nama perangkat harus 1 sampai 100 karakter, tanpa karakter khusus.", "en": "The device name must be 1 to 100 characters, without special characters."},
  "invalid_phone": {"id": "Nomor WhatsApp tidak valid. Tulis seperti 0812-3456-7890 atau +62 812 3456 7890.", "en": "The WhatsApp number is not valid. Write it like 0812-3456-7890 or +62 812 3456 7890."},
  "conflict": {"id": "Tindakan ini tidak bisa dilakukan pada status perangkat sekarang. Lihat statusnya, lalu coba lagi.", "en": "This action is not possible in the device's current state. Check its status, then try again."},
  "device_limit": {"id": "Akun ini sudah mencapai jumlah perangkat maksimum. Hapus satu perangkat dulu.", "en": "This account has reached its device limit. Delete a device first."},
  "rate_limited": {"id": "Terlalu sering meminta kode. Tunggu sebentar, lalu coba lagi.", "en": "Too many code requests. Wait a moment, then try again."},
  "throttled": {"id": "WhatsApp sedang membatasi permintaan kode untuk nomor ini. Coba lagi nanti.", "en": "WhatsApp is limiting code requests for this number. Try again later."},
  "no_qr": {"id": "Kode QR belum tersedia. Tunggu sebentar.", "en": "No QR code is available yet. Wait a moment."},
  "unavailable": {"id": "Layanan sedang tidak dapat dihubungi. Coba lagi sebentar lagi.", "en": "The service cannot be reached right now. Try again shortly."},
  "internal": {"id": "Terjadi kesalahan di server. Coba lagi nanti.", "en": "Something went wrong on the server. Try again later."},
  "unknown": {"id": "Terjadi kesalahan. Coba lagi.", "en": "Something went wrong. Try again."}
} /* end error-texts */;

// An error from the API: its code, and how long to wait when the server said.
class ApiFailure extends Error {
  constructor(code, retryAfter) {
    super(code);
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

// Writes "Indonesian · English" into el, the English part marked as English.
function bilingual(el, id, en) {
  // Unchanged text is left alone, so that live regions announce changes only.
  if (el.textContent === (id ? id + " · " : "") + en) return;
  const english = document.createElement("span");
  english.lang = "en";
  english.textContent = en;
  el.replaceChildren(id ? id + " · " : "", english);
}

// Shows an error (an ApiFailure or anything thrown) in el, in both languages.
function showError(el, e) {
  const code = e instanceof ApiFailure ? e.code : "unavailable";
  const text = ERROR_TEXTS[code] || ERROR_TEXTS.unknown;
  let id = text.id;
  let en = text.en;
  if (e instanceof ApiFailure && e.retryAfter) {
    id += " (tunggu " + e.retryAfter + " detik)";
    en += " (wait " + e.retryAfter + " s)";
  }
  bilingual(el, id, en);
}

// ------------------------------------------------------------------ signing in

function loadToken() {
  const m = location.hash.match(/access_token=([^&]+)/);
  if (m) {
    sessionStorage.setItem("wa_token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  token = sessionStorage.getItem("wa_token");
  signedIn(!!token);
}

// Shows the page for a signed-in owner, or the sign-in form (with why, if given).
function signedIn(yes, reasonCode) {
  $("signin").hidden = yes;
  $("add").hidden = !yes;
  $("list-section").hidden = !yes;
  if (!yes) {
    $("device").hidden = true;
    if (source) source.close();
    clearInterval(timer);
  }
  if (reasonCode) {
    const text = ERROR_TEXTS[reasonCode] || ERROR_TEXTS.unauthorized;
    bilingual($("signin-reason"), text.id, text.en);
  } else {
    $("signin-reason").textContent = "";
  }
}

// The token stopped being accepted: say so and ask for a new one.
function signOut(reasonCode) {
  sessionStorage.removeItem("wa_token");
  token = null;
  signedIn(false, reasonCode);
}

async function api(method, path, body) {
  let res;
  try {
    res = await fetch("/api" + path, {
      method,
      headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiFailure("unavailable");
  }
  const data = res.status === 204 ? {} : await res.json().catch(() => ({}));
  if (!res.ok) {
    const code = (data.error && data.error.code) || "unknown";
    if (res.status === 401) signOut(code);
    throw new ApiFailure(code, Number(res.headers.get("Retry-After")) || 0);
  }
  return { status: res.status, data };
}

// ------------------------------------------------------------------ words

function fmtLeft(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

const isQr = (d) => d.connection_method === "qr";

// Each state in plain words, in Indonesian and English: [status, next step].
function words(d) {
  if (removing.has(d.id)) {
    return ["Menghapus… · Removing…", "Tautan dilepas dari WhatsApp dulu, lalu perangkat dihapus. · Unlinking from WhatsApp first, then deleting."];
  }
  switch (d.status) {
    case "connecting":
      return isQr(d)
        ? ["Menyiapkan kode QR… · Preparing the QR code…", "Tunggu sebentar. · Wait a moment."]
        : ["Meminta kode… · Asking for a code…", "Tunggu sebentar. · Wait a moment."];
    case "waiting_pairing":
      if (isQr(d)) {
        return d.qr_code
          ? ["Menunggu kode QR dipindai · Waiting for the QR scan", "Pindai kode QR di bawah dengan WhatsApp di ponsel. · Scan the QR code below with WhatsApp on the phone."]
          : ["Kode QR baru sedang dibuat… · A new QR code is coming…", "Tunggu sebentar. · Wait a moment."];
      }
      return d.pairing_code
        ? ["Menunggu kode dimasukkan · Waiting for the code", "Masukkan kode di bawah di WhatsApp pada ponsel. · Enter the code below in WhatsApp on the phone."]
        : ["Kode baru sedang dibuat… · A new code is coming…", "Tunggu sebentar. · Wait a moment."];
    case "connected":
      return ["Terhubung · Connected", ""];
    case "disconnected":
      return d.linked
        ? ["Terputus, masih tertaut · Disconnected, still linked", "Tekan Sambungkan untuk menyambung lagi tanpa kode. · Press Connect to reconnect without a code."]
        : ["Terputus, tidak tertaut · Disconnected, not linked", "Tekan Tautkan lagi untuk mendapat kode baru. · Press Link again for a new code."];
    case "failed":
      if (d.linked) {
        return ["Gagal · Failed", "Tekan Sambungkan untuk mencoba lagi, atau lepas tautan. · Press Connect to try again, or unlink."];
      }
      return isQr(d)
        ? ["Gagal · Failed", "Tekan Minta QR baru untuk mencoba lagi. · Press Refresh QR to try again."]
        : ["Gagal · Failed", "Tekan Minta kode baru untuk mencoba lagi, atau ganti nomor. · Press Refresh code to try again, or use another number."];
    case "unlinking":
      return ["Melepas tautan… · Unlinking…", "WhatsApp sedang diberi tahu. · Telling WhatsApp."];
    default:
      return [d.status, ""];
  }
}

// Short status words for the list.
function shortWords(d) {
  if (removing.has(d.id)) return "Menghapus… · Removing…";
  return {
    connecting: "Menghubungkan… · Connecting…",
    waiting_pairing: isQr(d) ? "Menunggu pindai QR · Waiting for the scan" : "Menunggu kode · Waiting for the code",
    connected: "Terhubung · Connected",
    disconnected: d.linked ? "Terputus · Disconnected" : "Tidak tertaut · Not linked",
    failed: "Gagal · Failed",
    unlinking: "Melepas tautan… · Unlinking…",
  }[d.status] || d.status;
}

// The code spelled out for screen readers, one character at a time.
const spelled = (code) => code.replace("-", "").split("").join(" ");

// ------------------------------------------------------------------ one device

// Which buttons each state offers: every state has a next step.
function actions(d) {
  const s = d.status;
  const gone = removing.has(d.id);
  const canRelink = !d.linked && (s === "disconnected" || s === "failed");
  return {
    resume: !gone && d.linked && (s === "disconnected" || s === "failed"),
    relink: !gone && !d.linked && s === "disconnected",
    refresh: !gone && (s === "waiting_pairing" || (s === "failed" && !d.linked)),
    "change-number": !gone && canRelink,
    cancel: !gone && (s === "connecting" || s === "waiting_pairing"),
    disconnect: !gone && s === "connected",
    unlink: !gone && d.linked && s !== "unlinking",
    delete: !gone && s !== "unlinking",
  };
}

function show(d) {
  const same = current && current.id === d.id;
  current = d;
  $("device").hidden = false;
  $("device-name").textContent = d.device_name;
  const [status, hint] = words(d);
  // Only changed text is written, so that screen readers announce changes, not repeats.
  if ($("status").textContent !== status) $("status").textContent = status;
  if ($("device-hint").textContent !== hint) $("device-hint").textContent = hint;
  $("status").dataset.status = d.status;
  const offered = actions(d);
  for (const [id, yes] of Object.entries(offered)) $(id).hidden = !yes;
  $("refresh").textContent = isQr(d) ? "Minta QR baru · Refresh QR" : "Minta kode baru · Refresh code";
  if (!offered["change-number"] || !same) closeRelink();
  $("code-box").hidden = !d.pairing_code;
  $("code").textContent = d.pairing_code || "";
  $("code-spelled").textContent = d.pairing_code ? "Kode · Code: " + spelled(d.pairing_code) : "";
  const qrShown = isQr(d) && !!d.qr_code;
  $("qr-box").hidden = !qrShown;
  if (qrShown && $("qr").dataset.payload !== d.qr_code) {
    $("qr").dataset.payload = d.qr_code;
    $("qr").src = "/api/devices/" + d.id + "/qr.svg?access_token=" + encodeURIComponent(token) + "&t=" + Date.now();
  }
  $("connected").hidden = d.status !== "connected";
  $("linked-number").textContent = d.phone_number ? "+" + d.phone_number : "";
  showDeviceError(d);
  clearInterval(timer);
  if (d.pairing_code_expires_at) {
    const tick = () => {
      const left = fmtLeft(new Date(d.pairing_code_expires_at) - Date.now());
      $("countdown").textContent = left;
      $("countdown-en").textContent = left;
    };
    tick();
    timer = setInterval(tick, 1000);
  }
  markCurrentInList();
}

// The runner's reason (English) under a bilingual line saying what to do.
function showDeviceError(d) {
  const detail = d.error_message || "";
  const wait = d.retry_after ? new Date(d.retry_after).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
  if (wait) {
    bilingual($("device-error"), "Coba lagi setelah " + wait + ".", "Try again after " + wait + ".");
  } else if (detail && d.status === "failed") {
    bilingual($("device-error"), "Penautan gagal.", "Linking failed.");
  } else if (detail) {
    bilingual($("device-error"), "Perhatian:", "Note:");
  } else {
    $("device-error").textContent = "";
  }
  $("device-detail").hidden = !detail;
  $("device-detail-text").textContent = detail;
}

function follow(id) {
  if (source) source.close();
  source = new EventSource("/api/devices/" + id + "/events?access_token=" + encodeURIComponent(token));
  source.addEventListener("device", (e) => { show(JSON.parse(e.data)); refreshList(); });
  source.addEventListener("gone", () => {
    source.close();
    deleted(id);
  });
  // The token expired: the server closed the stream; sign in again to follow the device.
  source.addEventListener("expired", () => signOut("session_expired"));
}

// The device is gone: say so, and leave the list.
function deleted(id) {
  removing.delete(id);
  if (current && current.id === id) {
    current = null;
    $("device").hidden = true;
    clearInterval(timer);
  }
  bilingual($("notice"), "Perangkat sudah dihapus.", "The device was deleted.");
  refreshList();
}

function openDevice(d) {
  $("notice").textContent = "";
  show(d);
  follow(d.id);
}

// Runs an action on the current device and shows what it answered, or its error.
async function act(method, path, body) {
  try {
    const { data } = await api(method, "/devices/" + current.id + path, body);
    show(data);
    refreshList();
  } catch (e) {
    if (!(e instanceof ApiFailure && (e.code === "unauthorized" || e.code === "session_expired"))) {
      showError($("device-error"), e);
    }
  }
}

// ------------------------------------------------------------------ the list

async function refreshList() {
  if (!token) return;
  let devices;
  try {
    ({ data: devices } = await api("GET", "/devices"));
  } catch (e) {
    return; // shown by the action that failed, or by the sign-in form
  }
  // Newest first; one name used twice gets a number, oldest first.
  const byAge = [...devices].sort((a, b) => new Date(a.created_at) - new Date(b.created_at));
  const seen = {};
  const total = {};
  for (const d of byAge) total[d.device_name] = (total[d.device_name] || 0) + 1;
  const label = {};
  for (const d of byAge) {
    seen[d.device_name] = (seen[d.device_name] || 0) + 1;
    label[d.id] = total[d.device_name] > 1 ? d.device_name + " (" + seen[d.device_name] + ")" : d.device_name;
  }
  const list = $("list");
  list.replaceChildren(...byAge.reverse().map((d) => {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "row";
    b.dataset.id = d.id;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = label[d.id];
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.dataset.status = removing.has(d.id) ? "unlinking" : d.status;
    badge.textContent = shortWords(d);
    const meta = document.createElement("span");
    meta.className = "meta";
    const number = d.phone_number || d.phone_for_pairing;
    const created = new Date(d.created_at).toLocaleString([], { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
    meta.textContent = (number ? "•••" + number.slice(-4) + " · " : (isQr(d) ? "QR · " : "")) + created;
    b.append(name, badge, meta);
    b.onclick = () => { openDevice(d); $("device").scrollIntoView({ block: "start" }); $("device-name").focus({ preventScroll: true }); };
    li.append(b);
    return li;
  }));
  $("list-empty").hidden = devices.length > 0;
  $("list-count").textContent = devices.length ? "(" + devices.length + ")" : "";
  markCurrentInList();
  if (current && !devices.some((d) => d.id === current.id)) deleted(current.id);
}

function markCurrentInList() {
  for (const b of document.querySelectorAll("#list .row")) {
    if (current && b.dataset.id === current.id) b.setAttribute("aria-current", "true");
    else b.removeAttribute("aria-current");
  }
}

// ------------------------------------------------------------------ adding a device

// A first look at a number, before anything is sent: digits with the usual separators, 8 to
// 15 digits. The server reads it properly (and refuses what it cannot use).
function numberLooksValid(text) {
  const t = text.trim();
  if (!/^\+?[0-9 ()\-.]+$/.test(t)) return false;
  const digits = t.replace(/[^0-9]/g, "").length;
  return digits >= 8 && digits <= 15;
}

function invalidNumber(input, errorEl) {
  input.setAttribute("aria-invalid", "true");
  showError(errorEl, new ApiFailure("invalid_phone"));
  input.focus();
}

// Adds a device named in the form and starts pairing it, in one request: by code for the
// number typed, or by QR (no number needed). A refused name or number creates nothing.
async function add(pairing) {
  $("add-error").textContent = "";
  $("name").removeAttribute("aria-invalid");
  $("phone").removeAttribute("aria-invalid");
  if (!$("name").value.trim()) {
    $("name").setAttribute("aria-invalid", "true");
    showError($("add-error"), new ApiFailure("invalid_name"));
    $("name").focus();
    return;
  }
  if (pairing.phone_number !== undefined && !numberLooksValid(pairing.phone_number)) {
    invalidNumber($("phone"), $("add-error"));
    return;
  }
  try {
    const { data } = await api("POST", "/devices", { device_name: $("name").value, ...pairing });
    $("add-form").reset();
    openDevice(data);
    refreshList();
    const smooth = !window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    $("device").scrollIntoView({ behavior: smooth ? "smooth" : "auto", block: "start" });
    $("device-name").focus({ preventScroll: true });
  } catch (e) {
    if (e instanceof ApiFailure && e.code === "invalid_phone") $("phone").setAttribute("aria-invalid", "true");
    if (e instanceof ApiFailure && e.code === "invalid_name") $("name").setAttribute("aria-invalid", "true");
    showError($("add-error"), e);
  }
}

$("add-form").onsubmit = (ev) => {
  ev.preventDefault();
  add({ phone_number: $("phone").value });
};
$("add-qr").onclick = () => add({ connection_method: "qr" });

// ------------------------------------------------------------------ the device's actions

function closeRelink() {
  $("relink-form").hidden = true;
  $("change-number").setAttribute("aria-expanded", "false");
  $("relink-error").textContent = "";
}

$("copy").onclick = () => {
  if (current && current.pairing_code && navigator.clipboard) {
    navigator.clipboard.writeText(current.pairing_code.replace("-", "")).then(
      () => bilingual($("notice"), "Kode disalin.", "Code copied."),
      () => {},
    );
  }
};
$("refresh").onclick = () => act("POST", "/refresh");
$("cancel").onclick = () => act("POST", "/disconnect");
$("disconnect").onclick = () => act("POST", "/disconnect");
$("resume").onclick = () => act("POST", "/resume");
// Link again: a new code for the number (or a new QR) used before; without one, ask for it.
$("relink").onclick = () => {
  if (isQr(current) || current.phone_for_pairing) act("POST", "/refresh");
  else $("change-number").click();
};
$("change-number").onclick = () => {
  const opening = $("relink-form").hidden;
  $("relink-form").hidden = !opening;
  $("change-number").setAttribute("aria-expanded", String(opening));
  if (opening) $("relink-phone").focus();
};
$("relink-form").onsubmit = async (ev) => {
  ev.preventDefault();
  $("relink-phone").removeAttribute("aria-invalid");
  if (!numberLooksValid($("relink-phone").value)) {
    invalidNumber($("relink-phone"), $("relink-error"));
    return;
  }
  try {
    const { data } = await api("POST", "/devices/" + current.id + "/pairing", { phone_number: $("relink-phone").value });
    $("relink-form").reset();
    show(data);
    refreshList();
  } catch (e) { showError($("relink-error"), e); }
};
$("relink-qr").onclick = async () => {
  try {
    const { data } = await api("POST", "/devices/" + current.id + "/pairing", { connection_method: "qr" });
    show(data);
    refreshList();
  } catch (e) { showError($("relink-error"), e); }
};
$("unlink").onclick = () => {
  if (!confirm("Lepas tautan perangkat ini dari WhatsApp? · Unlink this device from WhatsApp?")) return;
  act("POST", "/unlink");
};
$("delete").onclick = async () => {
  const d = current;
  const ask = d.linked || d.status === "connected"
    ? "Hapus perangkat ini? Tautannya dilepas dari WhatsApp dulu. · Delete this device? It is unlinked from WhatsApp first."
    : "Hapus perangkat ini? · Delete this device?";
  if (!confirm(ask)) return;
  try {
    const { status, data } = await api("DELETE", "/devices/" + d.id);
    if (status === 204) {
      if (source) source.close();
      deleted(d.id);
    } else {
      // Linked: a runner unlinks it, then it is deleted; the event stream says "gone".
      removing.add(d.id);
      show(data);
      refreshList();
    }
  } catch (e) {
    if (!(e instanceof ApiFailure && (e.code === "unauthorized" || e.code === "session_expired"))) {
      showError($("device-error"), e);
    }
  }
};

$("signin-form").onsubmit = (ev) => {
  ev.preventDefault();
  const t = $("token").value.trim();
  if (!t) return;
  sessionStorage.setItem("wa_token", t);
  $("token").value = "";
  loadToken();
  refreshList();
};

loadToken();
refreshList();
