// The device page: no build step, no dependencies. Talks to /api with the Supabase access
// token (from #access_token=... in the URL, or typed in once), and follows one device over
// server-sent events.
"use strict";

const $ = (id) => document.getElementById(id);
let token = null;
let current = null;
let source = null;
let timer = null;

function loadToken() {
  const m = location.hash.match(/access_token=([^&]+)/);
  if (m) {
    sessionStorage.setItem("wa_token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  token = sessionStorage.getItem("wa_token");
  $("signin").hidden = !!token;
}

async function api(method, path, body) {
  const res = await fetch("/api" + path, {
    method,
    headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({}));
  if (res.status === 401) { sessionStorage.removeItem("wa_token"); $("signin").hidden = false; }
  if (!res.ok) throw new Error((data.error && data.error.message) || ("HTTP " + res.status));
  return data;
}

function fmtLeft(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

// Each status in plain words, in Indonesian and English.
const STATUS = {
  connecting: "Menghubungkan… · Connecting…",
  waiting_pairing: "Menunggu kode dimasukkan · Waiting for the code",
  connected: "Terhubung · Connected",
  disconnected: "Terputus · Disconnected",
  failed: "Gagal · Failed",
  unlinking: "Melepas tautan… · Unlinking…",
};
const words = (status) => STATUS[status] || status;
// Waiting for pairing with no code or QR shown: the runner that asked for the last one is
// gone (or another runner just took over), and a fresh one is being requested.
const NEW_CODE_COMING = "Kode baru sedang dibuat… · A new code is coming…";
const statusWords = (d) =>
  d.status === "waiting_pairing" && !d.pairing_code && !d.qr_code ? NEW_CODE_COMING : words(d.status);

function show(d) {
  current = d;
  $("device").hidden = false;
  $("device-name").textContent = d.device_name;
  $("status").textContent = statusWords(d);
  $("status").dataset.status = d.status;
  $("resume").hidden = !(d.linked && (d.status === "disconnected" || d.status === "failed"));
  $("disconnect").hidden = d.status === "disconnected";
  $("unlink").hidden = d.status === "unlinking" || (d.status === "disconnected" && !d.linked);
  $("code-box").hidden = !d.pairing_code;
  $("code").textContent = d.pairing_code || "";
  $("qr-box").hidden = !(d.connection_method === "qr" && d.qr_code);
  if (!$("qr-box").hidden) {
    $("qr").src = "/api/devices/" + d.id + "/qr.svg?access_token=" + encodeURIComponent(token) + "&t=" + Date.now();
  }
  $("connected").hidden = d.status !== "connected";
  $("linked-number").textContent = d.phone_number ? "+" + d.phone_number : "";
  let err = d.error_message || "";
  if (d.retry_after) err += " (" + new Date(d.retry_after).toLocaleTimeString() + ")";
  $("device-error").textContent = err;
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
}

function follow(id) {
  if (source) source.close();
  source = new EventSource("/api/devices/" + id + "/events?access_token=" + encodeURIComponent(token));
  source.addEventListener("device", (e) => { show(JSON.parse(e.data)); refreshList(); });
  source.addEventListener("gone", () => { source.close(); $("device").hidden = true; refreshList(); });
  // The token expired: the server closed the stream; sign in again to follow the device.
  source.addEventListener("expired", () => {
    source.close();
    sessionStorage.removeItem("wa_token");
    token = null;
    $("signin").hidden = false;
  });
}

async function refreshList() {
  if (!token) return;
  try {
    const devices = await api("GET", "/devices");
    const list = $("list");
    list.replaceChildren(...devices.map((d) => {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = "#";
      a.textContent = d.device_name + " — " + statusWords(d);
      a.onclick = (ev) => { ev.preventDefault(); show(d); follow(d.id); };
      li.append(a);
      return li;
    }));
  } catch (e) { /* shown by the action that failed */ }
}

$("save-token").onclick = () => {
  sessionStorage.setItem("wa_token", $("token").value.trim());
  loadToken();
  refreshList();
};

// Adds a device named in the form and starts pairing it: by code for the number typed, or by
// QR (no number needed).
async function add(pairing) {
  $("add-error").textContent = "";
  try {
    const d = await api("POST", "/devices", { device_name: $("name").value });
    const started = await api("POST", "/devices/" + d.id + "/pairing", pairing);
    show(started);
    follow(started.id);
    refreshList();
    $("add-form").reset();
    $("device").scrollIntoView({ behavior: "smooth", block: "start" });
  } catch (e) { $("add-error").textContent = e.message; }
}

$("add-form").onsubmit = (ev) => {
  ev.preventDefault();
  add({ phone_number: $("phone").value });
};
$("add-qr").onclick = () => {
  if (!$("name").reportValidity()) return;
  add({ connection_method: "qr" });
};

$("copy").onclick = () => {
  if (current && current.pairing_code) navigator.clipboard.writeText(current.pairing_code.replace("-", ""));
};
$("refresh").onclick = async () => {
  try { show(await api("POST", "/devices/" + current.id + "/refresh")); }
  catch (e) { $("device-error").textContent = e.message; }
};
$("disconnect").onclick = async () => {
  try { show(await api("POST", "/devices/" + current.id + "/disconnect")); }
  catch (e) { $("device-error").textContent = e.message; }
};
$("resume").onclick = async () => {
  try { show(await api("POST", "/devices/" + current.id + "/resume")); }
  catch (e) { $("device-error").textContent = e.message; }
};
$("unlink").onclick = async () => {
  if (!confirm("Lepas tautan perangkat ini dari WhatsApp? · Unlink this device from WhatsApp?")) return;
  try { show(await api("POST", "/devices/" + current.id + "/unlink")); }
  catch (e) { $("device-error").textContent = e.message; }
};

loadToken();
refreshList();
