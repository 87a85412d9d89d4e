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

/** The text of a received message (a conversation or an extended text). */
function textOf(received) {
    const m = received.message.message;
    return m?.conversation ?? m?.extendedTextMessage?.text ?? null;
}

/** Resolves with the first message Baileys' application received that `check` accepts. */
function waitForReceived(client, sim, check, what) {
    return new Promise((resolve, reject) => {
        const done = (fn, value) => {
            clearTimeout(timer);
            client.waiters.delete(waiter);
            fn(value);
        };
        const waiter = () => {
            const found = client.received.find(check);
            if (found) {
                done(resolve, found);
            }
        };
        const timer = setTimeout(() => {
            const seen = client.received.map((r) => `    socket ${r.socket} ${r.type} ${r.message.key?.id} ${JSON.stringify(textOf(r))}`).join('\n') || '    (none)';
            done(reject, new Error(`timed out after 20000 ms waiting for ${what}; the application received:\n${seen}\n${client.diagnostics(sim)}`));
        }, 20000);
        client.waiters.add(waiter);
        waiter();
    });
}

test('on the socket that has just linked, the application receives a friend\'s text and the owner\'s own',
    { timeout: TEST_TIMEOUT_MS }, async (t) => {
        const { sim, client, authDir } = await setUp(t);
        const number = '15550100005';
        const friend = '15550100095';
        // The owner's chosen name (WhatsApp's push name), which the server puts on the phone's
        // messages: Baileys takes its own name from them, as it must to announce presence.
        const named = await sim.account(number, 'Toko Budi');
        assert.equal(named.push_name, 'Toko Budi');
        await pairByCode(sim, client, number);
        const linked = client.sockets;
        // A real phone sends the new companion the app-state keys, then the initial history
        // sync notification; Baileys syncs app state on it and hands over what it buffered.
        await sim.waitForEvent('HistorySent', { number });

        const fromFriend = await sim.sendText(friend, number, 'halo dari teman');
        const got = await waitForReceived(client, sim, (r) => r.message.key?.id === fromFriend,
            "the friend's text as messages.upsert on the socket that linked");
        assert.equal(textOf(got), 'halo dari teman');
        assert.equal(got.socket, linked, 'the socket that linked, no re-login');
        assert.equal(got.type, 'notify');
        assert.equal(got.message.key.fromMe, false);

        const typed = await sim.sendText(number, friend, 'dari ponsel pemilik');
        const own = await waitForReceived(client, sim, (r) => r.message.key?.id === typed,
            "the text the owner typed on the phone, as the account's own message");
        assert.equal(textOf(own), 'dari ponsel pemilik');
        assert.equal(own.message.key.fromMe, true);
        assert.equal(got.message.pushName, 'Sim 0095', "the friend's push name (the default)");
        assert.equal(own.message.pushName, 'Toko Budi');
        await sim.waitUntil(() => client.sock.authState.creds.me?.name === 'Toko Budi', 10000,
            `Baileys' own name from its phone's messages (me.name = ${client.sock.authState.creds.me?.name})`);
        await client.sock.sendPresenceUpdate('available');
        const nameless = client.logger.records.filter((r) => /no name present/.test(r.msg ?? ''));
        assert.deepEqual(nameless, [], 'Baileys announces presence without complaining of no name');

        // Baileys confirms delivery of the friend's text to the friend's phone.
        const deadline = Date.now() + 10000;
        let receipts = [];
        while (!receipts.some((r) => r.ids.includes(fromFriend)) && Date.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 100));
            receipts = await sim.receipts(friend);
        }
        assert.ok(receipts.some((r) => r.ids.includes(fromFriend) && sameNumber(r.from, number)),
            `the friend's phone has Baileys' receipt for its text: ${JSON.stringify(receipts)}`);

        // Again after a re-login from the saved credentials.
        await client.stop();
        const again = new Client({ url: sim.url, authDir, name: 'baileys-again' });
        t.after(() => again.stop());
        await again.connect();
        await waitForOpen(again, sim, "`connection: 'open'` from the saved credentials");
        const later = await sim.sendText(friend, number, 'masih di sana?');
        const gotLater = await waitForReceived(again, sim, (r) => r.message.key?.id === later,
            "the friend's text after a re-login");
        assert.equal(textOf(gotLater), 'masih di sana?');
    });

test('texts a friend sent while Baileys was stopped arrive at its next login, in order, once each',
    { timeout: TEST_TIMEOUT_MS }, async (t) => {
        const { sim, client, authDir } = await setUp(t);
        const number = '15550100006';
        const friend = '15550100096';
        await pairByCode(sim, client, number);
        await sim.waitForEvent('HistorySent', { number });
        const connected = sim.events.filter((e) => e.kind === 'connected').length;
        await client.stop();
        await sim.waitUntil(() => sim.events.filter((e) => e.kind === 'disconnected').length >= connected,
            10000, 'the simulator to see every Baileys socket closed');

        const texts = ['satu', 'dua', 'tiga'];
        const ids = [];
        for (const text of texts) {
            ids.push(await sim.sendText(friend, number, text));
        }

        const again = new Client({ url: sim.url, authDir, name: 'baileys-again' });
        t.after(() => again.stop());
        await again.connect();
        await waitForOpen(again, sim, "`connection: 'open'` from the saved credentials");
        await waitForReceived(again, sim, (r) => r.message.key?.id === ids[2], 'the third text from the offline queue');
        const live = await sim.sendText(friend, number, 'empat');
        await waitForReceived(again, sim, (r) => r.message.key?.id === live, 'a text sent after the login');
        const fromFriend = again.received
            .filter((r) => !r.message.key.fromMe && r.message.message)
            .map((r) => r.message.key.id);
        assert.deepEqual(fromFriend, [...ids, live], 'each text once, in the order the friend sent them');
        assert.deepEqual(again.received.filter((r) => ids.includes(r.message.key.id)).map(textOf), texts);
    });
