-- wa-pairing, fourth migration (the third hardening round):
--   * device names keep their letters (the second migration trimmed the letter "v"), lose
--     invisible characters at their ends, and are refused when they carry direction
--     overrides; one function holds the rule, the same as `validate_device_name` in Rust;
--   * an owner may start pairing only so often (`pairing_starts_per_minute`), however the
--     row is written (the service's API or an end user through Supabase), fleet-wide;
--   * a claim drops the code or QR an earlier lease left behind: a code is shown only while
--     the lease that asked WhatsApp for it holds the device;
--   * auth state can be sealed: wiped, and closed to every later write under the fence that
--     sealed it (a session's late flush can never bring back what an unlink wiped);
--   * a companion (its Noise key) is stored for one device at most;
--   * a secret for pairing-budget keys that does not change when the auth-state keys do.
--
-- Mirrors wa-pairing-store (`validate_device_name`, `OwnerAction`, `PairingPace`,
-- `AuthStateStore::seal`, `AuthStateStore::register_companion`); the same conformance suite
-- runs against the in-memory store and this SQL. Idempotent; applies as plain SQL.

-- ------------------------------------------------------------------ settings
insert into public.wa_pairing_settings (name, value)
values ('pairing_starts_per_minute', '6')
on conflict (name) do nothing;

-- ------------------------------------------------------------------ device names
-- The characters (one regular-expression class each, as in Rust's `device_name` module):
--   white space: Unicode's White_Space property (Rust's `char::is_whitespace`);
--   invisible: Unicode's default-ignorable code points (zero-width spaces and joiners,
--     direction marks, variation selectors, fillers, tags);
--   direction overrides: embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069);
--   control: C0 and C1 controls (Rust's `char::is_control`).
-- A name is trimmed of white space and invisible characters at both ends; it must then
-- have 1 to 100 characters, no control character and no direction override. Invisible
-- characters inside a name stay (an emoji sequence needs its zero-width joiners).
create or replace function public.wa_device_name_check(p_name text, out name text, out problem text)
language plpgsql
immutable
as $$
declare
    edge constant text := '[\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000'
        || '\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f'
        || '\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3\U0001d173-\U0001d17a'
        || '\U000e0000-\U000e0fff]';
begin
    name := regexp_replace(coalesce(p_name, ''), '^' || edge || '+|' || edge || '+$', '', 'g');
    if char_length(name) = 0 then
        problem := 'the device name is empty: give the device a name such as "Shop phone"';
    elsif char_length(name) > 100 then
        problem := 'the device name is longer than 100 characters: choose a shorter name';
    elsif name ~ '[\u0001-\u001f\u007f-\u009f]' then
        problem := 'the device name contains control characters: use letters, digits, spaces and punctuation';
    elsif name ~ '[\u202a-\u202e\u2066-\u2069]' then
        problem := 'the device name contains invisible direction overrides (they make text read differently from how it is stored): type the name again without them';
    end if;
end
$$;

-- The name as stored, or WAI01 with what to change.
create or replace function public.wa_normalize_device_name(p_name text)
returns text
language plpgsql
immutable
as $$
declare
    checked record;
begin
    select * into checked from public.wa_device_name_check(p_name);
    if checked.problem is not null then
        raise exception using errcode = 'WAI01', message = checked.problem;
    end if;
    return checked.name;
end
$$;

-- ------------------------------------------------------------------ the owner's pace
-- A token bucket per owner: `pairing_starts_per_minute` starts in a burst, one more earned
-- back every 60 / n seconds. Starting or refreshing a pairing spends one, whichever way it
-- is written, so one account cannot make the service ask WhatsApp for codes for many
-- numbers (each request notifies that number's phone).
create table if not exists public.wa_owner_pace (
    user_id uuid primary key,
    tokens double precision not null,
    at timestamptz not null
);
create index if not exists wa_owner_pace_at_idx on public.wa_owner_pace (at);

-- Spends one pairing start of p_user's, or raises WAP01 with the seconds to wait as its
-- hint. Runs as its owner (end users' writes reach it through the guard trigger, and may
-- not touch the bucket themselves); an end user may spend only their own starts.
create or replace function public.wa_pace_acquire(p_user uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
    per_minute double precision;
    per_token double precision;
    caller uuid;
    b public.wa_owner_pace;
    v_tokens double precision;
    wait double precision;
begin
    begin
        caller := auth.uid();
    exception when others then
        caller := null;
    end;
    if caller is not null and caller <> p_user then
        raise exception using errcode = '42501', message = 'an owner may only spend their own pairing starts';
    end if;
    select greatest(coalesce(
        (select value::double precision from public.wa_pairing_settings where name = 'pairing_starts_per_minute'),
        6), 1) into per_minute;
    per_token := 60.0 / per_minute;
    insert into public.wa_owner_pace (user_id, tokens, at) values (p_user, per_minute, now())
    on conflict (user_id) do nothing;
    select * into b from public.wa_owner_pace where user_id = p_user for update;
    v_tokens := least(per_minute, b.tokens + extract(epoch from now() - b.at) / per_token);
    -- Buckets full again hold nothing worth keeping.
    delete from public.wa_owner_pace
     where user_id in (select s.user_id from public.wa_owner_pace s
                        where s.at < now() - interval '1 hour' limit 10);
    if v_tokens >= 1 then
        update public.wa_owner_pace set tokens = v_tokens - 1, at = now() where user_id = p_user;
        return;
    end if;
    update public.wa_owner_pace set tokens = v_tokens, at = now() where user_id = p_user;
    wait := ceil((1 - v_tokens) * per_token);
    raise exception using errcode = 'WAP01',
        message = format('too many pairing actions: try again in %s s', greatest(wait, 1)::bigint),
        hint = greatest(wait, 1)::bigint::text;
end
$$;

-- ------------------------------------------------------------------ every write to devices
-- As in the second migration, with the name rule above and the owner's pace.
create or replace function public.wa_guard_device_writes()
returns trigger
language plpgsql
as $$
declare
    end_user boolean := current_user in ('authenticated', 'anon');
    action text;
    cap integer;
    owned integer;
    reason text;
begin
    if tg_op = 'INSERT' or new.device_name is distinct from old.device_name then
        new.device_name := public.wa_normalize_device_name(new.device_name);
    end if;
    if new.phone_for_pairing is not null
       and (tg_op = 'INSERT' or new.phone_for_pairing is distinct from old.phone_for_pairing) then
        if char_length(new.phone_for_pairing) > 32 then
            raise exception using errcode = 'WAI01',
                message = 'the phone number is too long: write the international number, for example 6281234567890';
        end if;
        -- What people type around the digits goes; a leading + is the international prefix.
        new.phone_for_pairing := regexp_replace(new.phone_for_pairing, '[\s().-]', '', 'g');
        new.phone_for_pairing := regexp_replace(new.phone_for_pairing, '^\+', '');
        if new.phone_for_pairing !~ '^[1-9][0-9]{6,14}$' then
            raise exception using errcode = 'WAI01',
                message = 'the phone number must be the international number in digits, country code first, for example 6281234567890';
        end if;
    end if;

    if tg_op = 'INSERT' then
        -- One user's inserts queue here, so concurrent inserts cannot pass the cap together.
        perform pg_advisory_xact_lock(hashtextextended('wa_devices_of:' || new.user_id::text, 0));
        select coalesce(
            (select value::integer from public.wa_pairing_settings where name = 'max_devices_per_user'),
            20) into cap;
        select count(*) into owned from public.devices where user_id = new.user_id;
        if owned >= cap then
            raise exception using errcode = 'WAQ01',
                message = format('this account already has %s devices, the most allowed: delete one before adding another', cap);
        end if;
        if end_user then
            if new.status not in ('connecting', 'disconnected') then
                raise exception using errcode = 'WAI01', message = 'a new device starts as connecting or disconnected';
            end if;
            if new.status = 'connecting' and new.connection_method = 'pairing' and new.phone_for_pairing is null then
                raise exception using errcode = 'WAI01',
                    message = 'the phone number must be the international number in digits, country code first, for example 6281234567890';
            end if;
            if new.status = 'connecting' then
                perform public.wa_pace_acquire(new.user_id);
            end if;
            new.lease_owner := null; new.lease_expires_at := null; new.lease_fence := 0;
            new.session_data := null; new.phone_number := null;
            new.pairing_code := null; new.pairing_code_expires_at := null; new.qr_code := null;
            new.error_message := null; new.retry_after := null; new.last_connected_at := null;
        end if;
        return new;
    end if;

    if end_user then
        if new.status is distinct from old.status
           or new.phone_for_pairing is distinct from old.phone_for_pairing
           or new.connection_method is distinct from old.connection_method then
            action := case new.status
                when 'connecting' then 'start_pairing' when 'disconnected' then 'disconnect'
                when 'connected' then 'resume' when 'unlinking' then 'unlink' end;
            if action is null then
                raise exception using errcode = 'WAT01',
                    message = 'end users may only start pairing (connecting), disconnect (disconnected), resume (connected) or unlink (unlinking)';
            end if;
            if action = 'start_pairing' and new.connection_method = 'pairing' and new.phone_for_pairing is null then
                raise exception using errcode = 'WAI01',
                    message = 'the phone number must be the international number in digits, country code first, for example 6281234567890';
            end if;
            perform public.wa_check_owner_action(old, action);
            if action = 'start_pairing' then
                perform public.wa_pace_acquire(old.user_id);
            end if;
            new := public.wa_apply_owner_action(new, action, new.connection_method, new.phone_for_pairing);
            new.lease_fence := old.lease_fence + 1;
        end if;
        new.updated_at := now();
        return new;
    end if;

    -- The service: a status change that keeps the fence is a runner's move.
    if new.status is distinct from old.status and new.lease_fence = old.lease_fence then
        reason := public.wa_transition_refusal(old.status, new.status);
        if reason is not null then
            raise exception using errcode = 'WAT01',
                message = format('cannot move a device from %s to %s: %s', old.status, new.status, reason);
        end if;
    end if;
    return new;
end
$$;

-- ------------------------------------------------------------------ owner actions
-- As in the second migration, spending a pairing start of the owner's.
create or replace function public.wa_owner_action(p_device_id uuid, p_action text, p_method text, p_phone text)
returns public.devices
language plpgsql
as $$
declare
    d public.devices;
begin
    select * into d from public.devices where id = p_device_id for update;
    if not found then
        raise exception using errcode = 'WAN01', message = 'device not found';
    end if;
    perform public.wa_check_owner_action(d, p_action);
    if p_action in ('start_pairing', 'refresh') then
        if p_method not in ('pairing', 'qr') then
            raise exception using errcode = 'WAI01', message = 'unknown connection method: use pairing or qr';
        end if;
        if p_method = 'pairing' and (p_phone is null or p_phone !~ '^[1-9][0-9]{6,14}$') then
            raise exception using errcode = 'WAI01',
                message = 'the phone number must be E.164 digits without +, for example 6281234567890';
        end if;
        perform public.wa_pace_acquire(d.user_id);
    else
        p_method := d.connection_method;
        p_phone := d.phone_for_pairing;
    end if;
    d := public.wa_apply_owner_action(d, p_action, p_method, p_phone);
    update public.devices set
        status = d.status, connection_method = d.connection_method,
        phone_for_pairing = d.phone_for_pairing, phone_number = d.phone_number,
        pairing_code = d.pairing_code, pairing_code_expires_at = d.pairing_code_expires_at,
        qr_code = d.qr_code, error_message = d.error_message, retry_after = d.retry_after,
        lease_owner = d.lease_owner, lease_expires_at = d.lease_expires_at,
        lease_fence = d.lease_fence, updated_at = d.updated_at
     where id = p_device_id
    returning * into d;
    return d;
end
$$;

-- ------------------------------------------------------------------ claims
-- As in the third migration; a claimed device also loses the code or QR an earlier lease
-- left behind (that lease's WhatsApp connection, which the code belonged to, is gone: the
-- new holder asks for a fresh one).
create or replace function public.wa_claim_devices(p_owner text, p_limit integer, p_lease_seconds double precision, p_skip uuid[], p_resume_limit integer)
returns setof public.devices
language sql
as $$
    with bounds as (
        select greatest(p_limit, 0) as work,
               least(greatest(p_limit, 0), greatest(coalesce(p_resume_limit, p_limit), 0)) as resumes
    ), candidates as (
        -- Each branch reads one partial index in order and stops at its bound.
        (select id from public.devices
          where status in ('connecting', 'waiting_pairing', 'unlinking') and lease_owner is null
            and id <> all (p_skip)
          order by updated_at limit (select work from bounds))
        union all
        (select id from public.devices
          where status in ('connecting', 'waiting_pairing', 'unlinking') and lease_owner is not null
            and lease_expires_at < now() and id <> all (p_skip)
          order by lease_expires_at limit (select work from bounds))
        union all
        (select id from public.devices
          where status = 'connected' and lease_owner is null and id <> all (p_skip)
          order by updated_at limit (select resumes from bounds))
        union all
        (select id from public.devices
          where status = 'connected' and lease_owner is not null
            and lease_expires_at < now() and id <> all (p_skip)
          order by lease_expires_at limit (select resumes from bounds))
    ), ranked as (
        -- People first, by when the device last changed; then sessions, by how long their
        -- lease has been free.
        select d.id,
               d.status = 'connected' as resume,
               row_number() over (order by d.status = 'connected',
                                           case when d.status = 'connected'
                                                then coalesce(d.lease_expires_at, d.updated_at)
                                                else d.updated_at end,
                                           d.id) as place,
               row_number() over (partition by d.status = 'connected'
                                  order by coalesce(d.lease_expires_at, d.updated_at), d.id) as nth
          from public.devices d
         where d.id in (select id from candidates)
    ), chosen as (
        select id, place from ranked
         where place <= (select work from bounds)
           and (not resume or nth <= (select resumes from bounds))
    ), picked as (
        -- Locked rows are left to the claimer that holds them; the conditions are checked
        -- again on the locked row.
        select d.id from public.devices d
         where d.id in (select id from chosen)
           and d.status in ('connecting', 'waiting_pairing', 'connected', 'unlinking')
           and (d.lease_owner is null or d.lease_expires_at < now())
         for update skip locked
    ), claimed as (
        update public.devices d
           set lease_owner = p_owner,
               lease_expires_at = now() + make_interval(secs => p_lease_seconds),
               lease_fence = d.lease_fence + 1,
               pairing_code = null,
               pairing_code_expires_at = null,
               qr_code = null
          from picked join chosen on chosen.id = picked.id
         where d.id = picked.id
        returning d as device, chosen.place
    )
    -- In claim order, so the runner gives the longest-waiting session the first turn.
    select (claimed.device).* from claimed order by claimed.place
$$;

-- ------------------------------------------------------------------ sealed auth state
-- The fence under which a device's auth state was last sealed: auth-state writes must
-- carry a newer one.
alter table public.devices add column if not exists auth_sealed_fence bigint not null default 0;

-- Locks the device row against a concurrent claim and checks the caller holds its lease
-- and that the auth state was not sealed under that lease.
create or replace function public.wa_check_fence(p_device_id uuid, p_fence bigint)
returns void
language plpgsql
as $$
begin
    perform 1 from public.devices
     where id = p_device_id and lease_fence = p_fence and lease_owner is not null
       and auth_sealed_fence < p_fence
       for share;
    if not found then
        if exists (select 1 from public.devices where id = p_device_id) then
            raise exception using errcode = 'WAL01', message = 'lease lost';
        end if;
        raise exception using errcode = 'WAN01', message = 'device not found';
    end if;
end
$$;

-- ------------------------------------------------------------------ companions
-- The companion each device's auth state holds, by the SHA-256 of its Noise public key (how
-- WhatsApp's server recognises a companion): one device at most per companion, since two
-- sockets with one companion's keys kick each other off.
create table if not exists public.device_companions (
    device_id uuid primary key references public.devices (id) on delete cascade,
    companion text not null,
    updated_at timestamptz not null default now()
);
create unique index if not exists device_companions_companion_idx on public.device_companions (companion);

create or replace function public.wa_companion_register(p_device_id uuid, p_fence bigint, p_companion text)
returns void
language plpgsql
as $$
declare
    other uuid;
begin
    perform public.wa_check_fence(p_device_id, p_fence);
    -- Registrations of one companion queue here, so two devices cannot both pass the check.
    perform pg_advisory_xact_lock(hashtextextended('wa_companion:' || p_companion, 0));
    select device_id into other from public.device_companions
     where companion = p_companion and device_id <> p_device_id;
    if found then
        raise exception using errcode = 'WAC01',
            message = format('this WhatsApp companion is already stored for device %s: one companion runs on one device only (two would log each other out); unlink or delete that device first', other),
            hint = other::text;
    end if;
    insert into public.device_companions (device_id, companion) values (p_device_id, p_companion)
    on conflict (device_id) do update set companion = excluded.companion, updated_at = now();
end
$$;

create or replace function public.wa_companion_of(p_companion text)
returns uuid
language sql
stable
as $$
    select device_id from public.device_companions where companion = p_companion
$$;

-- Wiping a device's auth state forgets its companion too.
create or replace function public.wa_auth_clear(p_device_id uuid, p_fence bigint)
returns void
language plpgsql
as $$
begin
    perform public.wa_check_fence(p_device_id, p_fence);
    delete from public.device_auth_state where device_id = p_device_id;
    delete from public.device_companions where device_id = p_device_id;
end
$$;

-- Wipes a device's auth state and companion, and refuses every later auth-state write
-- under p_fence (or an older fence): only a newer lease writes again.
create or replace function public.wa_auth_seal(p_device_id uuid, p_fence bigint)
returns void
language plpgsql
as $$
begin
    -- The row lock waits for writes in flight under this fence (they hold a share lock).
    perform 1 from public.devices
     where id = p_device_id and lease_fence = p_fence and lease_owner is not null
       for update;
    if not found then
        if exists (select 1 from public.devices where id = p_device_id) then
            raise exception using errcode = 'WAL01', message = 'lease lost';
        end if;
        raise exception using errcode = 'WAN01', message = 'device not found';
    end if;
    update public.devices set auth_sealed_fence = greatest(auth_sealed_fence, p_fence)
     where id = p_device_id;
    delete from public.device_auth_state where device_id = p_device_id;
    delete from public.device_companions where device_id = p_device_id;
end
$$;

-- ------------------------------------------------------------------ budget secret
-- Pairing-budget keys are HMACs of phone numbers under this secret (made once, at random,
-- here), shared by every instance and independent of the auth-state keys, so that rotating
-- those keys never starts the budgets afresh.
create table if not exists public.wa_pairing_secrets (
    name text primary key,
    value text not null
);
insert into public.wa_pairing_secrets (name, value)
values ('budget_key', encode(sha256(convert_to(
    gen_random_uuid()::text || gen_random_uuid()::text || gen_random_uuid()::text || clock_timestamp()::text,
    'UTF8')), 'hex'))
on conflict (name) do nothing;

create or replace function public.wa_budget_secret()
returns text
language sql
stable
as $$
    select value from public.wa_pairing_secrets where name = 'budget_key'
$$;

-- ------------------------------------------------------------------ privileges
alter table public.wa_owner_pace enable row level security;
alter table public.device_companions enable row level security;
alter table public.wa_pairing_secrets enable row level security;

do $$
declare
    f text;
    r text;
begin
    foreach r in array array['anon', 'authenticated'] loop
        if exists (select 1 from pg_roles where rolname = r) then
            execute format('revoke all on public.wa_owner_pace, public.device_companions, public.wa_pairing_secrets from %I', r);
            -- The sealing fence is the service's bookkeeping, like the lease columns.
            execute format('revoke all (auth_sealed_fence) on public.devices from %I', r);
        end if;
    end loop;
    if exists (select 1 from pg_roles where rolname = 'service_role') then
        grant all on public.wa_owner_pace, public.device_companions, public.wa_pairing_secrets
            to service_role;
    end if;

    -- The service's functions: the service role only (Supabase grants EXECUTE on new
    -- functions to anon and authenticated by name, so those are revoked by name too).
    foreach f in array array[
        'wa_claim_devices(text, integer, double precision, uuid[], integer)',
        'wa_check_fence(uuid, bigint)', 'wa_owner_action(uuid, text, text, text)',
        'wa_auth_clear(uuid, bigint)', 'wa_auth_seal(uuid, bigint)',
        'wa_companion_register(uuid, bigint, text)', 'wa_companion_of(text)',
        'wa_budget_secret()', 'wa_guard_device_writes()']
    loop
        execute format('revoke all on function public.%s from public', f);
        foreach r in array array['anon', 'authenticated'] loop
            if exists (select 1 from pg_roles where rolname = r) then
                execute format('revoke all on function public.%s from %I', f, r);
            end if;
        end loop;
        if exists (select 1 from pg_roles where rolname = 'service_role') then
            execute format('grant execute on function public.%s to service_role', f);
        end if;
    end loop;

    -- What an end user's write runs through the trigger: the name rule (pure), and the pace
    -- (which runs as its owner and lets a caller spend only their own starts). Never anon.
    foreach f in array array[
        'wa_device_name_check(text)', 'wa_normalize_device_name(text)', 'wa_pace_acquire(uuid)']
    loop
        execute format('revoke all on function public.%s from public', f);
        foreach r in array array['anon', 'authenticated', 'service_role'] loop
            if exists (select 1 from pg_roles where rolname = r) then
                execute format('revoke all on function public.%s from %I', f, r);
                if r <> 'anon' then
                    execute format('grant execute on function public.%s to %I', f, r);
                end if;
            end if;
        end loop;
    end loop;
end $$;
