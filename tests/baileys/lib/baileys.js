'use strict';
// Stock Baileys, pointed at the simulator. The one thing changed is the test-side workaround
// for Baileys' finishInit race below; everything else is Baileys as an application uses it.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const baileys = require('baileys');
const noiseHandler = require('baileys/lib/Utils/noise-handler');

const { default: makeWASocket, useMultiFileAuthState, DisconnectReason, Browsers } = baileys;

// ---------------------------------------------------------------- the finishInit race
//
// Baileys' `validateConnection` (lib/Socket/socket.js) sends the Noise handshake's client
// finish, then calls `noise.finishInit()` without awaiting it. finishInit derives the
// transport keys with WebCrypto's HKDF, which is asynchronous, and only then marks the
// handshake finished. A frame that arrives in between is taken for a handshake frame: it is
// not decrypted, no `CB:success` (or `pair-device`) handler sees it, and the login hangs.
// Against WhatsApp the server's round trip hides the gap; against a simulator on loopback,
// which answers the finish at once, about a quarter of logins lose their `<success>`.
//
// The simulator must not be slowed down to hide a client bug, so the tests work around it
// here: every noise handler Baileys makes is wrapped so that frames received after the client
// has processed the server hello wait until finishInit has completed. Nothing else changes:
// the frames are then decoded by Baileys' own decodeFrame, in the order they arrived.
let workaroundInstalled = false;

function installFinishInitWorkaround() {
    if (workaroundInstalled) {
        return;
    }
    workaroundInstalled = true;
    const makeNoiseHandler = noiseHandler.makeNoiseHandler;
    // lib/Utils re-exports this module's binding through a getter, so socket.js's
    // `Utils_1.makeNoiseHandler(...)` reaches the wrapper.
    noiseHandler.makeNoiseHandler = (options) => {
        const noise = makeNoiseHandler(options);
        let serverHelloProcessed = false;
        let transportReady = false;
        let markReady;
        const ready = new Promise((resolve) => {
            markReady = resolve;
        });
        return {
            ...noise,
            processHandshake: async (...args) => {
                const keyEnc = await noise.processHandshake(...args);
                // From here on, whatever the server sends is a transport frame.
                serverHelloProcessed = true;
                return keyEnc;
            },
            finishInit: () => {
                const done = noise.finishInit();
                done.then(() => {
                    transportReady = true;
                    markReady();
                }, () => {});
                return done;
            },
            decodeFrame: (data, onFrame) => {
                if (!serverHelloProcessed || transportReady) {
                    return noise.decodeFrame(data, onFrame);
                }
                // Reactions to one promise run in the order they were added: arrival order.
                return ready.then(() => noise.decodeFrame(data, onFrame));
            },
        };
    };
}

installFinishInitWorkaround();

// ---------------------------------------------------------------- a logger that keeps records

/**
 * A pino-like logger (what Baileys takes) that keeps every record in memory, so a test can
 * look at what Baileys logged, and prints warnings and errors when WA_PAIRING_BAILEYS_LOG is
 * set (to a level: trace, debug, info, warn).
 */
function makeLogger(name) {
    const levels = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };
    const printAt = levels[process.env.WA_PAIRING_BAILEYS_LOG] ?? Infinity;
    const records = [];
    const make = (bindings) => {
        const logger = { level: 'debug', records };
        for (const [lvl, num] of Object.entries(levels)) {
            logger[lvl] = (obj, msg) => {
                if (typeof obj === 'string') {
                    [obj, msg] = [{}, obj];
                }
                const record = { level: lvl, time: Date.now(), ...bindings, ...obj, msg };
                records.push(record);
                if (records.length > 5000) {
                    records.shift();
                }
                if (num >= printAt) {
                    const { err, trace } = record;
                    console.error(`[${name} ${lvl}] ${msg ?? ''} ${err ? err.stack || err : ''}${trace ?? ''}`);
                }
            };
        }
        logger.child = (more) => make({ ...bindings, ...more });
        return logger;
    };
    return make({});
}

// ---------------------------------------------------------------- a client

const authDirs = [];
process.on('exit', () => {
    for (const dir of authDirs) {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

/**
 * A temporary directory for useMultiFileAuthState, removed when the process exits (Baileys
 * may still be saving into it for a moment after its socket is closed).
 */
function tempAuthDir() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wa-pairing-baileys-'));
    authDirs.push(dir);
    return dir;
}

/**
 * One Baileys client over an auth directory, reconnecting as Baileys' README does: after a
 * pairing the server restarts the stream (515, restartRequired) and the application opens a
 * new socket with the saved credentials.
 */
class Client {
    constructor({ url, authDir, name = 'baileys' }) {
        this.url = url;
        this.authDir = authDir;
        this.logger = makeLogger(name);
        this.updates = [];
        this.closes = [];
        this.sockets = 0;
        this.received = [];
        this.waiters = new Set();
        this.stopped = false;
    }

    async connect() {
        const { state, saveCreds } = await useMultiFileAuthState(this.authDir);
        this.state = state;
        const sock = makeWASocket({
            waWebSocketUrl: this.url,
            auth: state,
            logger: this.logger,
            browser: Browsers.ubuntu('Chrome'),
            printQRInTerminal: false,
            markOnlineOnConnect: false,
            syncFullHistory: false,
            // Fail fast: a step that hangs should fail the test with what was seen, not 60 s later.
            connectTimeoutMs: 15000,
            defaultQueryTimeoutMs: 15000,
        });
        this.sockets += 1;
        this.sock = sock;
        sock.ev.on('creds.update', saveCreds);
        // What the application receives: every `messages.upsert`, as Baileys hands it over.
        sock.ev.on('messages.upsert', ({ messages, type }) => {
            for (const m of messages) {
                this.received.push({ socket: this.sockets, type, message: m });
            }
            this.notify();
        });
        sock.ev.on('connection.update', (update) => {
            if (sock !== this.sock) {
                return;
            }
            this.updates.push({ ...update, socket: this.sockets, at: Date.now() });
            if (update.connection === 'close') {
                const error = update.lastDisconnect?.error;
                const status = error?.output?.statusCode;
                this.closes.push({ status, error });
                if (status === DisconnectReason.restartRequired && !this.stopped) {
                    this.connect().catch((err) => this.closes.push({ error: err }));
                }
            }
            this.notify();
        });
        return sock;
    }

    notify() {
        for (const w of [...this.waiters]) {
            w();
        }
    }

    /** Resolves with the first connection update (from `from` on) that `check` accepts. */
    waitForUpdate(check, { timeoutMs = 30000, from = 0, what = 'a connection update', failOnClose = true, sim } = {}) {
        return new Promise((resolve, reject) => {
            const done = (fn, value) => {
                clearTimeout(timer);
                this.waiters.delete(waiter);
                fn(value);
            };
            const waiter = () => {
                const found = this.updates.slice(from).find(check);
                if (found) {
                    done(resolve, found);
                    return;
                }
                const fatal = this.closes.find((c) => c.status !== DisconnectReason.restartRequired);
                if (failOnClose && fatal) {
                    done(reject, new Error(`Baileys closed the connection while waiting for ${what}: ${describeClose(fatal)}\n${this.diagnostics(sim)}`));
                }
            };
            const timer = setTimeout(() => done(reject, new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${this.diagnostics(sim)}`)), timeoutMs);
            this.waiters.add(waiter);
            waiter();
        });
    }

    diagnostics(sim) {
        const updates = this.updates.map((u) => {
            const { socket, at, ...rest } = u;
            const shown = { ...rest };
            if (shown.lastDisconnect) {
                shown.lastDisconnect = describeClose({ error: shown.lastDisconnect.error, status: shown.lastDisconnect.error?.output?.statusCode });
            }
            if (shown.qr) {
                shown.qr = `${shown.qr.slice(0, 12)}…`;
            }
            return `    socket ${socket}: ${JSON.stringify(shown)}`;
        }).join('\n') || '    (none)';
        const problems = this.logger.records
            .filter((r) => r.level === 'error' || r.level === 'warn' || r.unhandled)
            .slice(-12)
            .map((r) => `    ${r.level} ${r.msg ?? ''} ${r.err?.message ?? ''}${r.unhandled ? ` unhandled ${JSON.stringify(r.frame, bufferReplacer).slice(0, 300)}` : ''}`)
            .join('\n') || '    (none)';
        return `Baileys' connection updates:\n${updates}\nBaileys' warnings, errors and unhandled stanzas:\n${problems}${sim ? `\n${sim.diagnostics()}` : ''}`;
    }

    /** Whatever Baileys saved in its auth directory's creds.json. */
    savedCreds() {
        try {
            return JSON.parse(fs.readFileSync(path.join(this.authDir, 'creds.json'), 'utf8'));
        } catch {
            return null; // not written yet, or being written
        }
    }

    async stop() {
        this.stopped = true;
        try {
            this.sock?.end(undefined);
        } catch {
            // already closed
        }
        this.notify();
    }
}

function bufferReplacer(key, value) {
    if (value && value.type === 'Buffer' && Array.isArray(value.data)) {
        return `<${value.data.length} bytes>`;
    }
    return value;
}

function describeClose({ status, error }) {
    let text = `${error?.message ?? error} (status ${status})`;
    if (/unable to authenticate data|Unsupported state/.test(String(error?.message))) {
        text += ' — Baileys could not decrypt the server hello: the simulator did not mix the '
            + 'connection header Baileys sent (`WA 6 2`) into its Noise handshake hash';
    }
    return text;
}

module.exports = { Client, tempAuthDir, makeLogger, installFinishInitWorkaround, DisconnectReason };
