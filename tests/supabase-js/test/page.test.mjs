// The seed's device page, with the official Supabase client: what the page did through
// Supabase (insert a device, start pairing with a number, read its status and code, rename,
// stop, delete) and what it must not do, each refusal with the HTTP API's error code.
//
// Run by tests/e2e/tests/supabase_js.rs, which starts a PostgREST-compatible server in front
// of a scratch database holding Supabase's roles and our migrations, and passes:
//   WA_SUPABASE_URL         the project URL (the REST API is under /rest/v1)
//   WA_SUPABASE_ANON_KEY    the anon key
//   WA_SUPABASE_SERVICE_KEY the service_role key (here it plays the runner)
//   WA_SUPABASE_JWT_SECRET  the JWT secret, to sign owners' access tokens as Supabase Auth does
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { createClient } from '@supabase/supabase-js';
// The realtime client wants a WebSocket; Node 20 has none built in (a browser and Node 22
// do), so it gets the `ws` package's. The tests make no realtime subscription.
import WebSocket from 'ws';

const env = (name) => {
    const value = process.env[name];
    if (!value) {
        throw new Error(`${name} is not set: run this through tests/e2e/tests/supabase_js.rs`);
    }
    return value;
};
const url = env('WA_SUPABASE_URL');
const anonKey = env('WA_SUPABASE_ANON_KEY');
const serviceKey = env('WA_SUPABASE_SERVICE_KEY');
const jwtSecret = env('WA_SUPABASE_JWT_SECRET');

// What a page shows for a refused write: the HTTP API's code for the error's `code`.
const errorCodes = JSON.parse(
    readFileSync(new URL('../../../supabase/error-codes.json', import.meta.url), 'utf8'),
).codes;
const apiCode = (error) => errorCodes[error?.code];

const base64url = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** An access token as Supabase Auth signs one (HS256) for `userId`, valid for `ttl` seconds. */
function accessToken(userId, ttl = 3600) {
    const now = Math.floor(Date.now() / 1000);
    const header = base64url({ alg: 'HS256', typ: 'JWT' });
    const claims = base64url({
        sub: userId,
        role: 'authenticated',
        aud: 'authenticated',
        iat: now - 60,
        exp: now + ttl,
    });
    const signature = createHmac('sha256', jwtSecret).update(`${header}.${claims}`).digest('base64url');
    return `${header}.${claims}.${signature}`;
}

// What an owner may read of a device row (the auth state, the lease and the stored session
// are not granted to end users, so `select *` is refused: a page names its columns).
const PAGE_COLUMNS = 'id, user_id, device_name, status, connection_method, phone_for_pairing, '
    + 'phone_number, pairing_code, pairing_code_expires_at, qr_code, error_message, retry_after, '
    + 'last_connected_at, created_at, updated_at';

/** The page's client, signed in as `userId` (a fresh user unless given). */
function owner(userId = randomUUID(), ttl = 3600) {
    const client = createClient(url, anonKey, {
        accessToken: async () => accessToken(userId, ttl),
        auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
        realtime: { transport: WebSocket },
    });
    return { userId, client };
}

/** The service's client: here it plays the runner (a pairing code, a link, a throttle). */
const service = createClient(url, serviceKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: WebSocket },
});

async function addDevice(client, userId, fields = {}) {
    const { data, error } = await client
        .from('devices')
        .insert({ user_id: userId, device_name: 'Shop phone', status: 'disconnected', ...fields })
        .select(PAGE_COLUMNS)
        .single();
    assert.equal(error, null, `the insert is accepted: ${JSON.stringify(error)}`);
    return data;
}

async function asService(id) {
    const { data, error } = await service.from('devices').select().eq('id', id).maybeSingle();
    assert.equal(error, null, JSON.stringify(error));
    return data;
}

/** Asserts a refusal: the error's `code`, and the HTTP API's code a page shows for it. */
function assertRefused(error, sqlstate, code) {
    assert.ok(error, `refused with ${sqlstate}`);
    assert.equal(error.code, sqlstate, JSON.stringify(error));
    assert.equal(apiCode(error), code, `${sqlstate} is the HTTP API's ${code}`);
    assert.ok(error.message.length > 0, 'the refusal says what to change');
}

test('the page links a device: insert, start pairing with a number, read the code, rename, stop, delete', async () => {
    const { userId, client } = owner();
    const added = await addDevice(client, userId, { connection_method: 'pairing' });
    assert.equal(added.status, 'disconnected');
    assert.equal(added.user_id, userId);

    // "Connect this phone": what the owner typed, normalised by the database.
    const started = await client
        .from('devices')
        .update({ status: 'connecting', phone_for_pairing: '+62 812-3456-7890' })
        .eq('id', added.id)
        .select(PAGE_COLUMNS)
        .single();
    assert.equal(started.error, null, JSON.stringify(started.error));
    assert.equal(started.data.status, 'connecting');
    assert.equal(started.data.phone_for_pairing, '6281234567890');

    // The runner shows a code; the owner's page reads it.
    const expires = new Date(Date.now() + 60_000).toISOString();
    const shown = await service
        .from('devices')
        .update({ pairing_code: 'ABCD2345', pairing_code_expires_at: expires })
        .eq('id', added.id);
    assert.equal(shown.error, null, JSON.stringify(shown.error));
    const read = await client
        .from('devices')
        .select('status, pairing_code, pairing_code_expires_at')
        .eq('id', added.id)
        .single();
    assert.equal(read.error, null, JSON.stringify(read.error));
    assert.equal(read.data.status, 'connecting');
    assert.equal(read.data.pairing_code, 'ABCD2345');
    assert.equal(new Date(read.data.pairing_code_expires_at).getTime(), new Date(expires).getTime());

    const renamed = await client
        .from('devices')
        .update({ device_name: '  Toko HP  ' })
        .eq('id', added.id)
        .select('device_name')
        .single();
    assert.equal(renamed.error, null, JSON.stringify(renamed.error));
    assert.equal(renamed.data.device_name, 'Toko HP');

    const stopped = await client
        .from('devices')
        .update({ status: 'disconnected' })
        .eq('id', added.id)
        .select('status, pairing_code')
        .single();
    assert.equal(stopped.error, null, JSON.stringify(stopped.error));
    assert.equal(stopped.data.status, 'disconnected');
    assert.equal(stopped.data.pairing_code, null, 'a stopped pairing shows no code');

    const deleted = await client.from('devices').delete().eq('id', added.id).select('id');
    assert.equal(deleted.error, null, JSON.stringify(deleted.error));
    assert.deepEqual(deleted.data, [{ id: added.id }]);
    assert.equal(await asService(added.id), null, 'the row is gone');
});

test("another owner's device can be neither read, changed, deleted nor created", async () => {
    const alice = owner();
    const bob = owner();
    const device = await addDevice(alice.client, alice.userId);

    const read = await bob.client.from('devices').select(PAGE_COLUMNS).eq('id', device.id);
    assert.equal(read.error, null);
    assert.deepEqual(read.data, [], "Bob sees no row of Alice's (the API: not_found)");

    const changed = await bob.client
        .from('devices')
        .update({ device_name: 'Mine now' })
        .eq('id', device.id)
        .select('id');
    assert.equal(changed.error, null);
    assert.deepEqual(changed.data, [], 'no row was changed');

    const deleted = await bob.client.from('devices').delete().eq('id', device.id).select('id');
    assert.equal(deleted.error, null);
    assert.deepEqual(deleted.data, [], 'no row was deleted');

    const kept = await asService(device.id);
    assert.equal(kept.device_name, 'Shop phone');

    const planted = await bob.client
        .from('devices')
        .insert({ user_id: alice.userId, device_name: 'Planted', status: 'disconnected' });
    assertRefused(planted.error, '42501', 'invalid_input');
    const { data: alices } = await service.from('devices').select('id').eq('user_id', alice.userId);
    assert.equal(alices.length, 1, 'no row was added to Alice');
});

test('WhatsApp\'s wait cannot be skipped: retry_after is not writable and a start before it is throttled', async () => {
    const { userId, client } = owner();
    const device = await addDevice(client, userId, { connection_method: 'pairing' });
    const until = new Date(Date.now() + 10 * 60_000).toISOString();
    const throttled = await service.from('devices').update({ retry_after: until }).eq('id', device.id);
    assert.equal(throttled.error, null, JSON.stringify(throttled.error));

    const cleared = await client.from('devices').update({ retry_after: null }).eq('id', device.id);
    assertRefused(cleared.error, '42501', 'invalid_input');

    const started = await client
        .from('devices')
        .update({ status: 'connecting', phone_for_pairing: '6281234567890' })
        .eq('id', device.id);
    assertRefused(started.error, 'WAR01', 'throttled');
    assert.ok(Number(started.error.hint) > 0, 'the hint says how many seconds to wait');

    const kept = await asService(device.id);
    assert.equal(kept.status, 'disconnected');
    assert.equal(new Date(kept.retry_after).getTime(), new Date(until).getTime());
});

test('a 5,000-digit number and a bad name are refused with the fields the API names', async () => {
    const { userId, client } = owner();
    const device = await addDevice(client, userId, { connection_method: 'pairing' });

    const long = await client
        .from('devices')
        .update({ status: 'connecting', phone_for_pairing: '6'.repeat(5000) })
        .eq('id', device.id);
    assertRefused(long.error, 'WAI03', 'invalid_phone');

    const letters = await client
        .from('devices')
        .insert({ user_id: userId, device_name: 'Kasir', status: 'connecting', connection_method: 'pairing', phone_for_pairing: 'call me' });
    assertRefused(letters.error, 'WAI03', 'invalid_phone');

    const missing = await client
        .from('devices')
        .update({ status: 'connecting' })
        .eq('id', device.id);
    assertRefused(missing.error, 'WAI03', 'invalid_phone');

    const blank = await client.from('devices').update({ device_name: '   ' }).eq('id', device.id);
    assertRefused(blank.error, 'WAI02', 'invalid_name');

    const kept = await asService(device.id);
    assert.equal(kept.status, 'disconnected');
    assert.equal(kept.phone_for_pairing, null);
    assert.equal(kept.device_name, 'Shop phone');
});

test('the 21st device is refused', async () => {
    const { userId, client } = owner();
    for (let i = 1; i <= 20; i += 1) {
        await addDevice(client, userId, { device_name: `Phone ${i}` });
    }
    const extra = await client
        .from('devices')
        .insert({ user_id: userId, device_name: 'Phone 21', status: 'disconnected' });
    assertRefused(extra.error, 'WAQ01', 'device_limit');
    const { count } = await service
        .from('devices')
        .select('id', { count: 'exact', head: true })
        .eq('user_id', userId);
    assert.equal(count, 20);
});

test('an owner sets only the statuses of the owner actions, and deletes a linked device only after unlinking', async () => {
    const { userId, client } = owner();
    const device = await addDevice(client, userId);

    const linked = await client.from('devices').update({ status: 'connected' }).eq('id', device.id);
    assertRefused(linked.error, 'WAT01', 'conflict');
    const failed = await client.from('devices').update({ status: 'failed' }).eq('id', device.id);
    assertRefused(failed.error, 'WAT01', 'conflict');
    const born = await client
        .from('devices')
        .insert({ user_id: userId, device_name: 'Born linked', status: 'connected' });
    assertRefused(born.error, 'WAI01', 'invalid_input');

    // The runner links it (a runner's moves: connecting, then connected with the number).
    for (const change of [{ status: 'connecting' }, { status: 'connected', phone_number: '6281234567890' }]) {
        const moved = await service.from('devices').update(change).eq('id', device.id);
        assert.equal(moved.error, null, JSON.stringify(moved.error));
    }

    const early = await client.from('devices').delete().eq('id', device.id);
    assertRefused(early.error, 'WAT01', 'conflict');
    assert.equal((await asService(device.id)).status, 'connected', 'the linked device is kept');

    const unlink = await client
        .from('devices')
        .update({ status: 'unlinking' })
        .eq('id', device.id)
        .select('status')
        .single();
    assert.equal(unlink.error, null, JSON.stringify(unlink.error));
    assert.equal(unlink.data.status, 'unlinking');
});

test('an expired access token is refused as an expired session', async () => {
    const { userId, client } = owner();
    await addDevice(client, userId);
    const stale = owner(userId, -120);
    const read = await stale.client.from('devices').select('id');
    assert.ok(read.error, 'an expired token reads nothing');
    assert.equal(read.status, 401, JSON.stringify(read.error));
    assert.equal(apiCode(read.error), 'session_expired', JSON.stringify(read.error));
});
