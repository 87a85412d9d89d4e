'use strict';
// Drives the `wa-pairing-sim` binary from outside: starts it on a free loopback port, reads
// the events it prints on standard output, and sends its simulated phones commands on
// standard input. Everything the tests know about the binary's interface is in this file.

const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');

/** Where the simulator binary is: WA_PAIRING_SIM_BIN, else cargo's usual target directory. */
function simBinary() {
    if (process.env.WA_PAIRING_SIM_BIN) {
        return process.env.WA_PAIRING_SIM_BIN;
    }
    const target = process.env.CARGO_TARGET_DIR
        || path.join(__dirname, '..', '..', '..', 'target');
    return path.join(target, 'debug', 'wa-pairing-sim');
}

/** The binary's --help text: which commands its standard input takes. */
function helpOf(bin) {
    try {
        return execFileSync(bin, ['--help'], { encoding: 'utf8', timeout: 10000 });
    } catch (err) {
        return String(err.stdout ?? '');
    }
}

/** `CodeRequested`, `code_requested` and `code-requested` all name one kind of event. */
const kindOf = (name) => String(name || '').toLowerCase().replace(/[^a-z0-9]/g, '');

/**
 * One event line. The binary prints JSON lines; older builds printed Rust's debug form
 * (`CodeRequested { phone: "628…", count: 1 }`), which is read too so that a failure says
 * what the binary did rather than that its output could not be read.
 */
function parseEvent(line) {
    const trimmed = line.trim();
    if (trimmed.startsWith('{')) {
        try {
            const value = JSON.parse(trimmed);
            const name = value.event ?? value.type ?? value.kind ?? Object.keys(value)[0];
            let fields = value;
            // serde's externally tagged form: {"CodeRequested": {"phone": …}}
            if (Object.keys(value).length === 1 && typeof value[name] === 'object' && value[name] !== null) {
                fields = value[name];
            }
            return { json: true, kind: kindOf(name), ...fields, raw: trimmed };
        } catch {
            // not JSON after all: fall through
        }
    }
    const debug = /^([A-Za-z]+) \{ (.*) \}$/.exec(trimmed);
    if (debug) {
        const fields = {};
        for (const m of debug[2].matchAll(/(\w+): ("(?:[^"\\]|\\.)*"|[^,]+)/g)) {
            fields[m[1]] = m[2].startsWith('"') ? JSON.parse(m[2]) : m[2].trim();
        }
        return { json: false, kind: kindOf(debug[1]), ...fields, raw: trimmed };
    }
    // Display form: `CodeRequested(15550**0001, #1)`, the number redacted.
    const display = /^([A-Za-z]+)\((.*)\)$/.exec(trimmed);
    if (display) {
        const args = display[2].split(',').map((a) => a.trim());
        const fields = { args };
        if (/^[0-9*]+$/.test(args[0] ?? '')) {
            fields.phone = args[0];
        }
        return { json: false, kind: kindOf(display[1]), ...fields, raw: trimmed };
    }
    return null;
}

/** Whether an event's number is `number`; a redacted digit (`*`) matches any digit. */
function sameNumber(shown, number) {
    shown = String(shown ?? '');
    number = String(number);
    return shown.length === number.length && [...shown].every((c, i) => c === '*' || c === number[i]);
}

class Sim {
    constructor(child) {
        this.child = child;
        this.url = null;
        this.events = [];
        this.stdout = [];
        this.stderr = [];
        this.jsonEvents = false;
        this.exited = null;
        this.waiters = new Set();
    }

    /** Starts the binary and waits until it says where it listens. */
    static async start({ args = [], timeoutMs = 15000 } = {}) {
        const bin = simBinary();
        if (!fs.existsSync(bin)) {
            throw new Error(`the simulator binary ${bin} does not exist: build it with `
                + '`cargo build -p wa-pairing-sim --bin wa-pairing-sim` or set WA_PAIRING_SIM_BIN');
        }
        const env = { ...process.env };
        // Its debug lines say why a connection ended (a failed decryption, a bad header...).
        env.RUST_LOG = env.RUST_LOG || 'info,wa_pairing_sim=debug';
        env.NO_COLOR = '1';
        const child = spawn(bin, ['--port', '0', ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
        const sim = new Sim(child);
        sim.help = helpOf(bin);
        child.on('exit', (code, signal) => {
            sim.exited = { code, signal };
            sim.notify();
        });
        child.on('error', (err) => {
            sim.exited = { error: err };
            sim.notify();
        });
        readline.createInterface({ input: child.stdout }).on('line', (line) => sim.onLine(line));
        readline.createInterface({ input: child.stderr }).on('line', (line) => {
            sim.stderr.push(line);
            if (sim.stderr.length > 400) {
                sim.stderr.shift();
            }
        });
        await sim.waitUntil(() => sim.url, timeoutMs, 'the simulator to print its URL');
        return sim;
    }

    onLine(line) {
        this.stdout.push(line);
        const url = /(wss?:\/\/\S+)/.exec(line);
        if (!this.url && url) {
            this.url = url[1].replace(/[",}]+$/, '');
        }
        const event = parseEvent(line);
        if (event) {
            if (event.json) {
                this.jsonEvents = true;
            }
            if (!this.url && typeof event.url === 'string') {
                this.url = event.url;
            }
            this.events.push(event);
        }
        this.notify();
    }

    notify() {
        for (const w of [...this.waiters]) {
            w();
        }
    }

    /**
     * Resolves with `check()`'s first truthy value; rejects on time-out or the sim's exit.
     * Checked on each line the simulator prints, and every 20 ms for conditions outside it.
     */
    waitUntil(check, timeoutMs, what) {
        return new Promise((resolve, reject) => {
            const done = (fn, value) => {
                clearTimeout(timer);
                clearInterval(poll);
                this.waiters.delete(waiter);
                fn(value);
            };
            const poll = setInterval(() => waiter(), 20);
            const waiter = () => {
                const value = check();
                if (value) {
                    done(resolve, value);
                } else if (this.exited) {
                    done(reject, new Error(`the simulator exited (${JSON.stringify(this.exited)}) while waiting for ${what}\n${this.diagnostics()}`));
                }
            };
            const timer = setTimeout(() => done(reject, new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${this.diagnostics()}`)), timeoutMs);
            this.waiters.add(waiter);
            waiter();
        });
    }

    /** Waits for an event of `kind` (any spelling) about `number`, after `from` events. */
    waitForEvent(kind, { number, timeoutMs = 20000, from = 0, where = () => true } = {}) {
        const k = kindOf(kind);
        return this.waitUntil(
            () => this.events.slice(from).find((e) => e.kind === k
                && (number === undefined || sameNumber(e.phone ?? e.number, number))
                && where(e)),
            timeoutMs,
            `the simulator's ${kind} event${number ? ` for ${number}` : ''}`,
        );
    }

    send(line) {
        this.child.stdin.write(`${line}\n`);
    }

    /** Whether the binary's standard input takes `command` (as its --help lists it). */
    takes(command) {
        return new RegExp(`^\\s*${command}\\s`, 'm').test(this.help);
    }

    /**
     * Sends one command and resolves when the binary reports its outcome (a `done` line), or
     * rejects with the binary's `error` line. A binary that reports no outcomes (older ones)
     * resolves at once.
     */
    command(line, command, number) {
        const from = this.events.length;
        this.send(line);
        if (!this.jsonEvents) {
            return Promise.resolve();
        }
        const ours = (e) => (e.kind === 'done' || e.kind === 'error')
            && e.command === command && sameNumber(e.phone, number);
        return this.waitUntil(() => this.events.slice(from).find(ours), 60000, `the outcome of \`${line}\``)
            .then((outcome) => {
                if (outcome.kind === 'error') {
                    throw new Error(`the simulator refused \`${line}\`: ${outcome.message}\n${this.diagnostics()}`);
                }
                return outcome;
            });
    }

    /** The simulated phone of `number` types the pairing code its companion shows. */
    enterCode(number, code) {
        return this.takes('code')
            ? this.command(`code ${number} ${code}`, 'code', number)
            : this.command(`${number} ${code}`, 'code', number);
    }

    /** The simulated phone of `number` scans the QR code its companion shows. */
    scanQr(number, payload) {
        this.require('qr', 'scan a QR code for a phone (`qr <number> <payload>`)');
        return this.command(`qr ${number} ${payload}`, 'qr', number);
    }

    /**
     * The phone of `number` refuses its next `times` code requests with `status`, asking the
     * client to wait `backoffSecs` (`refuse PHONE STATUS [BACKOFF] [TIMES]`).
     */
    refuseCodes(number, status, { backoffSecs = 300, times = 1 } = {}) {
        this.require('refuse', `refuse a phone's code requests (\`refuse ${number} ${status} ${backoffSecs} ${times}\`)`);
        return this.command(`refuse ${number} ${status} ${backoffSecs} ${times}`, 'refuse', number);
    }

    require(command, what) {
        if (!this.takes(command)) {
            throw new Error(`this wa-pairing-sim binary cannot ${what}: its --help lists no \`${command}\` `
                + `command for its standard input. Its --help:\n${this.help.replace(/^/gm, '    ')}`);
        }
    }

    diagnostics() {
        const tail = (lines, n) => lines.slice(-n).map((l) => `    ${l}`).join('\n') || '    (nothing)';
        return `simulator stdout (last lines):\n${tail(this.stdout, 15)}\nsimulator stderr (last lines):\n${tail(this.stderr, 25)}`;
    }

    async stop() {
        if (this.exited) {
            return;
        }
        this.child.stdin.end();
        this.child.kill('SIGINT');
        const killer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
        await this.waitUntil(() => this.exited, 5000, 'the simulator to exit').catch(() => {});
        clearTimeout(killer);
    }
}

module.exports = { Sim, simBinary, parseEvent, sameNumber };
