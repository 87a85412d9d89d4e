'use strict';
// Drives the `wa-pairing-sim` binary from outside: starts it on a free loopback port, reads
// the events it prints on standard output, and sends its simulated phones commands on
// standard input. Everything the tests know about the binary's interface is in this file.

const { spawn } = require('node:child_process');
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

/** `code_requested`, `CodeRequested` and `code-requested` all name one kind of event. */
const kindOf = (name) => String(name || '').toLowerCase().replace(/[^a-z0-9]/g, '');

/**
 * One line of the binary's standard output: a JSON object `{"event": …, …}` (its README
 * lists them). Anything else (it prints nothing else) is kept in the diagnostics only.
 */
function parseEvent(line) {
    const trimmed = line.trim();
    if (!trimmed.startsWith('{')) {
        return null;
    }
    try {
        const value = JSON.parse(trimmed);
        return { ...value, kind: kindOf(value.event), raw: trimmed };
    } catch {
        return null;
    }
}

/** Whether an event's number is `number`. */
function sameNumber(shown, number) {
    return String(shown ?? '') === String(number);
}

class Sim {
    constructor(child) {
        this.child = child;
        this.url = null;
        this.events = [];
        this.stdout = [];
        this.stderr = [];
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
        const event = parseEvent(line);
        if (event) {
            if (event.kind === 'listening' && !this.url) {
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

    /**
     * Sends one command and resolves when the binary reports its outcome (a `done` line), or
     * rejects with the binary's `error` line (an unknown command, no code requested...).
     */
    command(line, command, number) {
        const from = this.events.length;
        this.send(line);
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
        return this.command(`code ${number} ${code}`, 'code', number);
    }

    /** The simulated phone of `number` scans the QR code its companion shows. */
    scanQr(number, payload) {
        return this.command(`qr ${number} ${payload}`, 'qr', number);
    }

    /**
     * The phone of `number` refuses its next `times` code requests with `status`, asking the
     * client to wait `backoffSecs` (`refuse PHONE STATUS [BACKOFF] [TIMES]`).
     */
    refuseCodes(number, status, { backoffSecs = 300, times = 1 } = {}) {
        return this.command(`refuse ${number} ${status} ${backoffSecs} ${times}`, 'refuse', number);
    }

    /**
     * Creates the account of `number` (`account PHONE [NAME]`), named `name` (its push name)
     * if given; resolves with `{ lid, push_name }`.
     */
    async account(number, name) {
        const outcome = await this.command(`account ${number}${name ? ` ${name}` : ''}`, 'account', number);
        return { lid: outcome.lid, push_name: outcome.push_name };
    }

    /** The phone of `number` types `text` to `to`; resolves with the message id. */
    async sendText(number, to, text) {
        const outcome = await this.command(`send ${number} ${to} ${text}`, 'send', number);
        return outcome.id;
    }

    /** The messages the phone of `number` received (`inbox PHONE`), texts included. */
    async inbox(number) {
        const outcome = await this.command(`inbox ${number}`, 'inbox', number);
        return outcome.messages;
    }

    /** The receipts companions sent the phone of `number` (`receipts PHONE`). */
    async receipts(number) {
        const outcome = await this.command(`receipts ${number}`, 'receipts', number);
        return outcome.receipts;
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
