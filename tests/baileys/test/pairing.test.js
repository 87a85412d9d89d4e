'use strict';
// Stock Baileys 6.17.16 against the wa-pairing-sim binary: pairing by code and by QR, a
// login from the saved credentials, and a refused code request. Each test starts its own
// simulator and gives Baileys a fresh auth directory.

const assert = require('node:assert/strict');
const { test } = require('node:test');

const { Sim, sameNumber } = require('../lib/sim');
const { Client, tempAuthDir } = require('../lib/baileys');

const TEST_TIMEOUT_MS = 90000;

/** Starts a simulator and a Baileys client with a fresh auth directory; both stop after `t`. */
async function setUp(t, authDir = tempAuthDir()) {
    const sim = await Sim.start();
    const client = new Client({ url: sim.url, authDir });
    t.after(async () => {
        await client.stop();
        await sim.stop();
    });
    return { sim, client, authDir };
}

/**
 * Baileys' README: wait for the `qr` event (the connection is ready to register) before
 * asking for a pairing code. WhatsApp's server sends an unregistered client its QR refs
 * (`<iq type="set"><pair-device><ref>…`) right after the handshake; Baileys emits the first
 * one as `qr`.
 */
function waitForQr(client, sim, from = 0) {
    return client.waitForUpdate((u) => typeof u.qr === 'string' && u.qr.length > 0, {
        timeoutMs: 15000,
        from,
        sim,
        what: "Baileys' `qr` event (the simulator must send an unregistered client "
            + '`<iq type="set"><pair-device><ref>…</ref></pair-device></iq>` right after the handshake)',
    });
}

function waitForOpen(client, sim, what = "Baileys' `connection: 'open'`") {
    return client.waitForUpdate((u) => u.connection === 'open', { timeoutMs: 30000, sim, what });
}

/**
 * Waits until Baileys has written creds.json naming the linked device (it saves on each
 * `creds.update`, asynchronously, so the file lags `open` by a moment), then checks it.
 */
async function assertLinked(client, number, sim) {
    const linked = (creds) => creds?.me?.id && creds.me.lid && creds.account?.details;
    const creds = await sim.waitUntil(() => {
        const c = client.savedCreds();
        return linked(c) ? c : null;
    }, 5000, `creds.json with the linked device, its signed identity and its LID (now: ${JSON.stringify(client.savedCreds()?.me ?? null)})`);
    assert.match(creds.me.id, new RegExp(`^${number}:\\d+@s\\.whatsapp\\.net$`),
        `creds.json names the linked device (me.id = ${creds.me.id})`);
    assert.match(creds.me.lid, /@lid$/, `creds.json has the LID that <success> gave (${creds.me.lid})`);
    return creds;
}

/** Pairs a fresh client by code, as an application following Baileys' README does. */
async function pairByCode(sim, client, number) {
    await client.connect();
    await waitForQr(client, sim);
    const code = await client.sock.requestPairingCode(number);
    assert.match(code, /^[0-9A-Z]{8}$/, `Baileys shows an 8-character code (${code})`);
    await sim.waitForEvent('CodeRequested', { number });
    await sim.enterCode(number, code);
    await sim.waitForEvent('Paired', { number, timeoutMs: 30000 });
    await waitForOpen(client, sim);
    return assertLinked(client, number, sim);
}

test('pairs by code: qr event, requestPairingCode, the phone types the code, open, creds saved',
    { timeout: TEST_TIMEOUT_MS }, async (t) => {
        const { sim, client } = await setUp(t);
        const number = '15550100001';
        await pairByCode(sim, client, number);
        // The pairing ended with the server's stream restart (515), and Baileys logged in again.
        assert.equal(client.sockets, 2, 'one socket to pair, a second one to log in after the 515 restart');
    });

test('pairs by QR: the phone scans the qr string, open, creds saved', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const { sim, client } = await setUp(t);
    const number = '15550100002';
    await client.connect();
    const { qr } = await waitForQr(client, sim);
    const parts = qr.split(',');
    assert.equal(parts.length, 4, `Baileys' QR string is ref,noise key,identity key,adv secret (${qr.slice(0, 20)}…)`);
    await sim.scanQr(number, qr);
    await sim.waitForEvent('Paired', { number, timeoutMs: 30000 });
    await waitForOpen(client, sim);
    await assertLinked(client, number, sim);
});

test('logs in again from the saved credentials without pairing', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const { sim, client, authDir } = await setUp(t);
    const number = '15550100003';
    const paired = await pairByCode(sim, client, number);
    await client.stop();
    const pairings = sim.events.filter((e) => e.kind === 'paired').length;
    const loginsBefore = sim.events.filter((e) => e.kind === 'loggedin').length;

    const again = new Client({ url: sim.url, authDir, name: 'baileys-again' });
    t.after(() => again.stop());
    await again.connect();
    await waitForOpen(again, sim, "`connection: 'open'` from the saved credentials");
    assert.ok(!again.updates.some((u) => u.qr), 'no QR is shown to a registered client');
    assert.equal(again.sockets, 1, 'one socket: no pairing, no restart');
    await sim.waitUntil(() => sim.events.filter((e) => e.kind === 'loggedin').length > loginsBefore,
        5000, "the simulator's LoggedIn event for the second login");
    assert.equal(sim.events.filter((e) => e.kind === 'paired').length, pairings, 'no second pairing');
    const creds = await assertLinked(again, number, sim);
    assert.equal(creds.me.id, paired.me.id, 'the same linked device');
});

test('a code request refused with 429 reaches Baileys as rate-overlimit', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const { sim, client } = await setUp(t);
    const number = '15550100004';
    await sim.refuseCodes(number, 429, { backoffSecs: 300, times: 1 });
    await client.connect();
    await waitForQr(client, sim);
    // Baileys 6.17.16 sends companion_hello with sendNode, not query: requestPairingCode
    // resolves with the code it made up before the server has answered, and the answer, an
    // <iq type="error"><error code="429" text="rate-overlimit"/></iq>, reaches no handler.
    // What an application sees of it is Baileys' log record of that unhandled stanza.
    const code = await client.sock.requestPairingCode(number);
    assert.match(code, /^[0-9A-Z]{8}$/);
    await sim.waitForEvent('CodeRefused', { number, where: (e) => String(e.code) === '429' });
    const refused = await sim.waitUntil(() => client.logger.records.find((r) => r.unhandled
        && r.frame?.tag === 'iq' && r.frame.attrs?.type === 'error'
        && Array.isArray(r.frame.content)
        && r.frame.content.some((c) => c.tag === 'error' && c.attrs?.code === '429')),
    10000, "Baileys' record of the <iq type=\"error\"><error code=\"429\"/></iq> answer");
    const error = refused.frame.content.find((c) => c.tag === 'error');
    assert.equal(error.attrs.text, 'rate-overlimit');
    assert.ok(!sim.events.some((e) => e.kind === 'coderequested' && sameNumber(e.phone ?? e.number, number)),
        'the refused request made no code');
    assert.ok(!client.updates.some((u) => u.connection === 'open'), 'nothing was linked');
});
