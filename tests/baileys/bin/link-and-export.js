#!/usr/bin/env node
'use strict';
// Links one device with stock Baileys against a running simulator by pairing code, then
// hands over its credentials as the original (Baileys-era) system stored them, for the
// import test (tests/e2e/tests/baileys_import.rs).
//
//   node bin/link-and-export.js --url ws://127.0.0.1:PORT/ws/chat --phone 6281234567890 [--out-dir DIR]
//
// Standard output, one JSON object per line:
//   {"event":"code","code":"ABCD1234"}           the code Baileys shows; type it on the phone
//   {"event":"linked","session_data":{...}}      after `open`: {creds, keys} with buffers as
//                                                 Baileys' BufferJSON writes them
// With --out-dir, the useMultiFileAuthState folder is also copied there. The socket is
// closed before `linked` is printed: one account never runs in two clients at once.

const fs = require('node:fs');
const path = require('node:path');

const { Client, tempAuthDir } = require('../lib/baileys');

function args() {
    const out = {};
    const argv = process.argv.slice(2);
    for (let i = 0; i < argv.length; i += 2) {
        const name = argv[i].replace(/^--/, '');
        out[name] = argv[i + 1];
    }
    if (!out.url || !out.phone) {
        throw new Error('usage: link-and-export.js --url WS_URL --phone DIGITS [--out-dir DIR]');
    }
    return out;
}

/** Baileys' key types, longest first: file names are `<type>-<id>.json`. */
const KEY_TYPES = ['app-state-sync-version', 'app-state-sync-key', 'sender-key-memory', 'identity-key',
    'lid-mapping', 'device-list', 'sender-key', 'pre-key', 'session', 'tctoken'];

/**
 * `{creds, keys: {type: {id: value}}}` from an auth folder, values exactly as Baileys wrote
 * them (JSON with BufferJSON's buffers): what the original system kept in session_data.
 */
function sessionData(dir) {
    const creds = JSON.parse(fs.readFileSync(path.join(dir, 'creds.json'), 'utf8'));
    const keys = {};
    for (const file of fs.readdirSync(dir)) {
        if (!file.endsWith('.json') || file === 'creds.json') {
            continue;
        }
        const stem = file.slice(0, -'.json'.length);
        const type = KEY_TYPES.find((t) => stem.startsWith(`${t}-`));
        if (!type) {
            continue;
        }
        let id = stem.slice(type.length + 1);
        // useMultiFileAuthState writes `/` as `__` in file names.
        id = id.replace(/__/g, '/');
        keys[type] = keys[type] || {};
        keys[type][id] = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
    }
    return { creds, keys };
}

function emit(value) {
    process.stdout.write(`${JSON.stringify(value)}\n`);
}

async function waitFor(check, timeoutMs, what) {
    const end = Date.now() + timeoutMs;
    for (;;) {
        const value = check();
        if (value) {
            return value;
        }
        if (Date.now() > end) {
            throw new Error(`timed out waiting for ${what}`);
        }
        await new Promise((r) => setTimeout(r, 50));
    }
}

async function main() {
    const { url, phone, 'out-dir': outDir } = args();
    const authDir = tempAuthDir();
    const client = new Client({ url, authDir, name: 'baileys-export' });
    await client.connect();
    await client.waitForUpdate((u) => typeof u.qr === 'string', { timeoutMs: 15000, what: "Baileys' `qr` event" });
    const code = await client.sock.requestPairingCode(phone);
    emit({ event: 'code', code });
    await client.waitForUpdate((u) => u.connection === 'open', { timeoutMs: 60000, what: "`connection: 'open'`" });
    // Baileys saves on creds.update, asynchronously: wait for the linked creds, their LID and
    // the pre-keys of the upload that follows the login.
    await waitFor(() => {
        const c = client.savedCreds();
        return c?.me?.lid && c.account?.details && c.firstUnuploadedPreKeyId > 1 ? c : null;
    }, 15000, 'creds.json with the linked device, its LID and its uploaded pre-keys');
    await client.stop();
    // Writes queued before the close land within a moment.
    await new Promise((r) => setTimeout(r, 500));
    if (outDir) {
        fs.mkdirSync(outDir, { recursive: true });
        for (const file of fs.readdirSync(authDir)) {
            fs.copyFileSync(path.join(authDir, file), path.join(outDir, file));
        }
    }
    emit({ event: 'linked', session_data: sessionData(authDir) });
}

main().then(() => process.exit(0), (err) => {
    process.stderr.write(`${err.stack || err}\n`);
    process.exit(1);
});
