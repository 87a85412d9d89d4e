'use strict';
// Baileys' side of the side-by-side figures in docs/benchmarks.md: pairing latencies and
// memory per session, stock Baileys in one Node process against the wa-pairing-sim binary.
//
//   WA_PAIRING_SIM_BIN=…/release/wa-pairing-sim node --expose-gc bench/pairing.js [PAIRINGS] [SESSIONS,…]
//
// PAIRINGS (default 50) pair one at a time, after one to warm up; each is measured as
//   code request → code:  requestPairingCode() called → the code returned and the server's
//                         acceptance seen (the simulator's CodeRequested event);
//   code typed → linked:  the phone told to type the code → `connection: 'open'` after the
//                         server's restart;
//   whole flow:           the socket made → `open`.
// Then sessions are added (paired, kept open) up to each of SESSIONS (default 10,100) and the
// process's RSS is read after a GC, against the RSS before any socket (base). The pairings
// measured stay open and count as sessions: for the memory figures alone, PAIRINGS is 0 and
// SESSIONS an empty string skips them.

const fs = require('node:fs');

const { Sim } = require('../lib/sim');
const { Client, tempAuthDir } = require('../lib/baileys');

const pairings = Number(process.argv[2] ?? 50);
const sessionSteps = (process.argv[3] ?? '10,100').split(',').filter(Boolean).map(Number);

const now = () => Number(process.hrtime.bigint()) / 1e6;
const mib = (bytes) => bytes / (1024 * 1024);

function percentile(values, p) {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function rss() {
    if (global.gc) {
        global.gc();
        global.gc();
    }
    return process.memoryUsage().rss;
}

let next = 15550300000;

/** Pairs one fresh client by code and leaves it open; returns it with its timings. */
async function pairOne(sim) {
    const number = String(next++);
    const client = new Client({ url: sim.url, authDir: tempAuthDir(), name: 'bench' });
    const t0 = now();
    await client.connect();
    await client.waitForUpdate((u) => typeof u.qr === 'string', { sim, what: 'qr' });
    const from = sim.events.length;
    const t1 = now();
    const code = await client.sock.requestPairingCode(number);
    await sim.waitForEvent('CodeRequested', { number, from });
    const t2 = now();
    const typed = sim.enterCode(number, code);
    await client.waitForUpdate((u) => u.connection === 'open', { sim, what: 'open', timeoutMs: 60000 });
    const t3 = now();
    await typed;
    return { client, codeMs: t2 - t1, linkMs: t3 - t2, wholeMs: t3 - t0 };
}

function report(runs) {
    const row = (name, key) => {
        const values = runs.map((r) => r[key]);
        return `| ${name} | ${percentile(values, 50).toFixed(1)} ms | ${percentile(values, 99).toFixed(1)} ms |`;
    };
    console.log([
        `Baileys ${require('baileys/package.json').version}, Node ${process.version}, ${runs.length} pairings one at a time after one to warm up`,
        '',
        '| | p50 | p99 |',
        '|---|---:|---:|',
        row('code request → code', 'codeMs'),
        row('code typed → linked (`open`)', 'linkMs'),
        row('whole flow (socket made → `open`)', 'wholeMs'),
        '',
    ].join('\n'));
}

async function main() {
    const sim = await Sim.start();
    const base = rss();
    const clients = [];
    const runs = [];
    if (pairings > 0) {
        const warm = await pairOne(sim);
        clients.push(warm.client);
        for (let i = 0; i < pairings; i++) {
            const run = await pairOne(sim);
            runs.push(run);
            clients.push(run.client);
        }
        report(runs);
    }
    console.log(`base RSS (Baileys loaded, no socket): ${mib(base).toFixed(1)} MiB`);
    for (const target of sessionSteps) {
        while (clients.length < target) {
            // Ten at a time: each pairing is a PBKDF2 run on each side.
            const batch = Math.min(10, target - clients.length);
            const paired = await Promise.all(Array.from({ length: batch }, () => pairOne(sim)));
            clients.push(...paired.map((p) => p.client));
        }
        // Let the sessions settle (pre-key uploads, key shares) before measuring.
        await new Promise((resolve) => setTimeout(resolve, 2000));
        const open = clients.filter((c) => c.updates.some((u) => u.connection === 'open')).length;
        const total = rss();
        console.log(`${clients.length} sessions (${open} open): RSS ${mib(total).toFixed(1)} MiB, `
            + `${(mib(total - base) / clients.length).toFixed(3)} MiB per session`);
    }
    for (const c of clients) {
        await c.stop();
        fs.rmSync(c.authDir, { recursive: true, force: true });
    }
    await sim.stop();
}

main().then(() => process.exit(0), (err) => {
    console.error(err);
    process.exit(1);
});
