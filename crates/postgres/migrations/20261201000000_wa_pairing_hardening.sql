-- wa-pairing, second migration: the database enforces the owner's rules whichever way a row
-- is written, devices can be disconnected (link kept), resumed and unlinked, runners can skip
-- devices they cannot open, pairing budgets have a durable floor, and end-user roles get no
-- access to anything but their own device rows.
--
-- Every rule here mirrors one in wa-pairing-store (`OwnerAction::check`,
-- `DeviceStatus::check_transition`, `validate_device_name`, `DEFAULT_MAX_DEVICES_PER_USER`),
-- and the same conformance suite runs against both. Idempotent.

-- ------------------------------------------------------------------ settings
-- Deployment settings the database needs to enforce its rules. Operators change them with
-- plain SQL: update public.wa_pairing_settings set value = '50' where name = 'max_devices_per_user';
create table if not exists public.wa_pairing_settings (
    name text primary key,
    value text not null
);
insert into public.wa_pairing_settings (name, value)
values ('max_devices_per_user', '20')
on conflict (name) do nothing;

-- ------------------------------------------------------------------ statuses
alter table public.devices drop constraint if exists devices_status_check;
alter table public.devices add constraint devices_status_check
    check (status in ('connecting', 'waiting_pairing', 'connected', 'disconnected', 'failed', 'unlinking'));

drop index if exists public.devices_claim_free_idx;
drop index if exists public.devices_claim_lapsed_idx;
create index if not exists devices_claim_free_v2_idx on public.devices (updated_at)
    where status in ('connecting', 'waiting_pairing', 'connected', 'unlinking') and lease_owner is null;
create index if not exists devices_claim_lapsed_v2_idx on public.devices (lease_expires_at)
    where status in ('connecting', 'waiting_pairing', 'connected', 'unlinking') and lease_owner is not null;

-- The runner's moves (DeviceStatus::check_transition): null when allowed, otherwise why not.
create or replace function public.wa_transition_refusal(p_from text, p_to text)
returns text
language sql
immutable
as $$
    select case
        when p_from = p_to then null
        when (p_from, p_to) in (
            ('connecting', 'waiting_pairing'), ('connecting', 'connected'),
            ('connecting', 'disconnected'), ('connecting', 'failed'),
            ('waiting_pairing', 'connecting'), ('waiting_pairing', 'connected'),
            ('waiting_pairing', 'disconnected'), ('waiting_pairing', 'failed'),
            ('connected', 'disconnected'), ('connected', 'failed'),
            ('disconnected', 'connecting'), ('failed', 'connecting'), ('failed', 'disconnected'),
            ('unlinking', 'disconnected')
        ) then null
        when p_from = 'unlinking'
            then 'the owner asked to unlink this device; it can only become disconnected'
        when p_to = 'unlinking'
            then 'only the owner can ask to unlink a device'
        when p_from = 'connected' and p_to in ('waiting_pairing', 'connecting')
            then 'the device is already linked; disconnect it before linking it again'
        when p_from in ('disconnected', 'failed') and p_to = 'waiting_pairing'
            then 'no pairing was requested; start pairing first (status connecting)'
        when p_from in ('disconnected', 'failed') and p_to = 'connected'
            then 'the device was stopped; the owner must start it again before it can connect'
        when p_from = 'disconnected' and p_to = 'failed'
            then 'the device was stopped; nothing is running that could fail'
        else 'this status change is not allowed'
    end
$$;

-- ------------------------------------------------------------------ the owner's rules
-- Checks one owner action (OwnerAction::check) against a device row: raises WAT01 (not
-- allowed, with words the owner can act on) or WAR01 (WhatsApp throttles pairing; the hint
-- holds the seconds to wait). Reads nothing but its arguments.
create or replace function public.wa_check_owner_action(d public.devices, p_action text)
returns void
language plpgsql
stable
as $$
declare
    target text := case p_action
        when 'start_pairing' then 'connecting' when 'refresh' then 'connecting'
        when 'disconnect' then 'disconnected' when 'resume' then 'connected'
        when 'unlink' then 'unlinking' end;
    reason text;
begin
    if target is null then
        raise exception using errcode = 'WAI01', message = format('unknown owner action %s', p_action);
    end if;
    if p_action in ('start_pairing', 'refresh') then
        if d.status = 'connected' then
            reason := 'the device is already linked; disconnect it before linking it again';
        elsif d.status = 'unlinking' then
            reason := 'the device is being unlinked; wait until it is disconnected, then link it again';
        elsif d.retry_after is not null and d.retry_after > now() then
            raise exception using errcode = 'WAR01',
                message = format('WhatsApp is limiting pairing for this number: try again in %s minutes',
                                 ceil(extract(epoch from d.retry_after - now()) / 60)),
                hint = ceil(extract(epoch from d.retry_after - now()))::text;
        end if;
    elsif p_action = 'resume' then
        if d.status in ('disconnected', 'failed') and d.phone_number is null then
            reason := 'the device is not linked: start pairing to link it (a new code)';
        elsif d.status = 'connected' then
            reason := 'the device is already connected';
        elsif d.status in ('connecting', 'waiting_pairing') then
            reason := 'a pairing is in progress; wait for it to finish or disconnect first';
        elsif d.status = 'unlinking' then
            reason := 'the device is being unlinked; link it again once it is disconnected';
        end if;
    end if;
    if reason is not null then
        raise exception using errcode = 'WAT01',
            message = format('cannot move a device from %s to %s: %s', d.status, target, reason);
    end if;
end
$$;

-- Applies an owner action's effect to a row (after the check) and revokes any lease: the
-- holder's next write fails, and a runner claims the device afresh.
create or replace function public.wa_apply_owner_action(d public.devices, p_action text, p_method text, p_phone text)
returns public.devices
language plpgsql
stable
as $$
begin
    if p_action in ('start_pairing', 'refresh') then
        d.status := 'connecting';
        d.connection_method := p_method;
        if p_method = 'pairing' or p_phone is not null then
            d.phone_for_pairing := p_phone;
        end if;
        -- A new link replaces the old one: the runner wipes the old state when it pairs.
        d.phone_number := null;
        d.error_message := null;
        d.retry_after := null;
    elsif p_action = 'disconnect' then
        d.status := 'disconnected';
    elsif p_action = 'resume' then
        d.status := 'connected';
        d.error_message := null;
    elsif p_action = 'unlink' then
        d.status := 'unlinking';
        d.error_message := null;
    end if;
    d.pairing_code := null;
    d.pairing_code_expires_at := null;
    d.qr_code := null;
    d.lease_owner := null;
    d.lease_expires_at := null;
    d.lease_fence := d.lease_fence + 1;
    d.updated_at := now();
    return d;
end
$$;

-- ------------------------------------------------------------------ every write to devices
-- Whoever writes (the service, an operator's SQL, an end user through Supabase): names and
-- numbers are checked, each user keeps under the device cap, a runner's status change follows
-- the runner's rules, and an end user's change of status, number or method is an owner
-- action with the owner's rules and effect.
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
        new.device_name := btrim(new.device_name, E' \t\r\n\f\v');
        if new.device_name is null or char_length(new.device_name) = 0 then
            raise exception using errcode = 'WAI01',
                message = 'the device name is empty: give the device a name such as "Shop phone"';
        end if;
        if char_length(new.device_name) > 100 then
            raise exception using errcode = 'WAI01',
                message = 'the device name is longer than 100 characters: choose a shorter name';
        end if;
        if new.device_name ~ '[[:cntrl:]]' then
            raise exception using errcode = 'WAI01',
                message = 'the device name contains control characters: use letters, digits, spaces and punctuation';
        end if;
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

drop trigger if exists devices_guard_user_writes on public.devices;
drop function if exists public.wa_guard_user_writes();
drop trigger if exists devices_guard_writes on public.devices;
create trigger devices_guard_writes
    before insert or update on public.devices
    for each row execute function public.wa_guard_device_writes();

-- ------------------------------------------------------------------ owner actions
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

create or replace function public.wa_start_pairing(p_device_id uuid, p_method text, p_phone text)
returns public.devices
language sql
as $$
    select * from public.wa_owner_action(p_device_id, 'start_pairing', p_method, p_phone)
$$;

create or replace function public.wa_refresh_pairing(p_device_id uuid)
returns public.devices
language plpgsql
as $$
declare
    d public.devices;
begin
    select * into d from public.devices where id = p_device_id;
    if not found then
        raise exception using errcode = 'WAN01', message = 'device not found';
    end if;
    if d.connection_method = 'pairing' and d.phone_for_pairing is null then
        raise exception using errcode = 'WAI01',
            message = 'no phone number is stored for this device: start pairing with a phone number first';
    end if;
    return public.wa_owner_action(p_device_id, 'refresh', d.connection_method, d.phone_for_pairing);
end
$$;

create or replace function public.wa_stop_device(p_device_id uuid)
returns public.devices
language sql
as $$
    select * from public.wa_owner_action(p_device_id, 'disconnect', null, null)
$$;

create or replace function public.wa_resume_device(p_device_id uuid)
returns public.devices
language sql
as $$
    select * from public.wa_owner_action(p_device_id, 'resume', null, null)
$$;

create or replace function public.wa_unlink_device(p_device_id uuid)
returns public.devices
language sql
as $$
    select * from public.wa_owner_action(p_device_id, 'unlink', null, null)
$$;

-- ------------------------------------------------------------------ claims
-- Like the first version, plus devices being unlinked, and never the devices in p_skip (an
-- instance that cannot open a device's auth state leaves it to one that can).
create or replace function public.wa_claim_devices(p_owner text, p_limit integer, p_lease_seconds double precision, p_skip uuid[])
returns setof public.devices
language sql
as $$
    with candidates as (
        (select id from public.devices
          where status in ('connecting', 'waiting_pairing', 'connected', 'unlinking') and lease_owner is null
            and id <> all (p_skip)
          order by updated_at limit p_limit)
        union all
        (select id from public.devices
          where status in ('connecting', 'waiting_pairing', 'connected', 'unlinking') and lease_owner is not null
            and lease_expires_at < now() and id <> all (p_skip)
          order by lease_expires_at limit p_limit)
    ), picked as (
        select d.id from public.devices d
         where d.id in (select id from candidates)
           and d.status in ('connecting', 'waiting_pairing', 'connected', 'unlinking')
           and (d.lease_owner is null or d.lease_expires_at < now())
         limit p_limit
         for update skip locked
    )
    update public.devices d
       set lease_owner = p_owner,
           lease_expires_at = now() + make_interval(secs => p_lease_seconds),
           lease_fence = d.lease_fence + 1
      from picked
     where d.id = picked.id
    returning d.*
$$;

create or replace function public.wa_claim_devices(p_owner text, p_limit integer, p_lease_seconds double precision)
returns setof public.devices
language sql
as $$
    select * from public.wa_claim_devices(p_owner, p_limit, p_lease_seconds, '{}'::uuid[])
$$;

-- ------------------------------------------------------------------ auth-state maintenance
-- The devices that have auth state, in id order, after p_after (null: from the start).
create or replace function public.wa_auth_devices(p_after uuid, p_limit integer)
returns setof uuid
language sql
stable
as $$
    select distinct device_id from public.device_auth_state
     where p_after is null or device_id > p_after
     order by device_id
     limit p_limit
$$;

-- Replaces one value only while it is still p_expected (re-encryption while runners write).
create or replace function public.wa_auth_replace(p_device_id uuid, p_key text, p_expected bytea, p_value bytea)
returns boolean
language sql
as $$
    with replaced as (
        update public.device_auth_state set value = p_value, updated_at = now()
         where device_id = p_device_id and key = p_key and value = p_expected
        returning 1
    )
    select exists (select 1 from replaced)
$$;

-- ------------------------------------------------------------------ pairing budget
-- A token bucket per key (an HMAC of the number, never the number), the durable floor under
-- a Redis budget: a Redis restart or outage cannot lift the limit.
create table if not exists public.wa_pairing_budget (
    key text primary key,
    tokens double precision not null,
    at timestamptz not null
);
create index if not exists wa_pairing_budget_at_idx on public.wa_pairing_budget (at);

-- Spends one token for p_key: null when allowed, else the seconds until one is earned back.
create or replace function public.wa_budget_acquire(p_key text, p_capacity integer, p_refill_seconds double precision)
returns double precision
language plpgsql
as $$
declare
    b public.wa_pairing_budget;
    per_token double precision := greatest(p_refill_seconds, 0.001);
    v_tokens double precision;
begin
    insert into public.wa_pairing_budget (key, tokens, at) values (p_key, p_capacity, now())
    on conflict (key) do nothing;
    select * into b from public.wa_pairing_budget where key = p_key for update;
    v_tokens := least(p_capacity, b.tokens + extract(epoch from now() - b.at) / per_token);
    -- Buckets full again for a day hold nothing worth keeping.
    delete from public.wa_pairing_budget
     where key in (select s.key from public.wa_pairing_budget s
                    where s.at < now() - make_interval(secs => p_capacity * per_token) - interval '1 day'
                    limit 10);
    if v_tokens >= 1 then
        update public.wa_pairing_budget set tokens = v_tokens - 1, at = now() where key = p_key;
        return null;
    end if;
    update public.wa_pairing_budget set tokens = v_tokens, at = now() where key = p_key;
    return (1 - v_tokens) * per_token;
end
$$;

-- ------------------------------------------------------------------ privileges
-- The bookkeeping table of wa-pairing-postgres's migrator, created here too (the same
-- definition), so that this file applies as plain SQL (`supabase db push`, psql) on a
-- database the migrator never touched.
create table if not exists public.wa_pairing_migrations (
    version text primary key,
    applied_at timestamptz not null default now()
);
alter table public.wa_pairing_migrations enable row level security;
alter table public.wa_pairing_settings enable row level security;
alter table public.wa_pairing_budget enable row level security;

do $$
declare
    f text;
    r text;
begin
    foreach r in array array['anon', 'authenticated'] loop
        if exists (select 1 from pg_roles where rolname = r) then
            execute format('revoke all on public.wa_pairing_migrations, public.wa_pairing_budget from %I', r);
            execute format('revoke all on public.wa_pairing_settings from %I', r);
        end if;
    end loop;
    -- End users' writes read the device cap (the trigger runs as them).
    if exists (select 1 from pg_roles where rolname = 'authenticated') then
        grant select on public.wa_pairing_settings to authenticated;
        drop policy if exists wa_pairing_settings_read on public.wa_pairing_settings;
        create policy wa_pairing_settings_read on public.wa_pairing_settings
            for select to authenticated using (true);
        -- An end user may now also resume (connected) and unlink (unlinking); the columns
        -- they may write are unchanged.
    end if;
    if exists (select 1 from pg_roles where rolname = 'service_role') then
        grant all on public.wa_pairing_migrations, public.wa_pairing_settings,
            public.wa_pairing_budget to service_role;
    end if;

    -- The service's functions: the service role only. Supabase grants EXECUTE on new
    -- functions to anon and authenticated directly (not through PUBLIC), so those grants are
    -- revoked by name too.
    foreach f in array array[
        'wa_claim_devices(text, integer, double precision)',
        'wa_claim_devices(text, integer, double precision, uuid[])',
        'wa_renew_leases(text, uuid[], bigint[], double precision)',
        'wa_release_lease(uuid, bigint)', 'wa_check_fence(uuid, bigint)',
        'wa_update_device(uuid, bigint, jsonb)', 'wa_start_pairing(uuid, text, text)',
        'wa_refresh_pairing(uuid)', 'wa_stop_device(uuid)', 'wa_resume_device(uuid)',
        'wa_unlink_device(uuid)', 'wa_owner_action(uuid, text, text, text)',
        'wa_auth_put(uuid, bigint, text[], bytea[])', 'wa_auth_delete(uuid, bigint, text[])',
        'wa_auth_delete_prefix(uuid, bigint, text)', 'wa_auth_clear(uuid, bigint)',
        'wa_auth_get(uuid, text)', 'wa_auth_scan(uuid, text)',
        'wa_auth_devices(uuid, integer)', 'wa_auth_replace(uuid, text, bytea, bytea)',
        'wa_budget_acquire(text, integer, double precision)',
        'wa_notify_device_change()', 'wa_guard_device_writes()']
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

    -- The rule functions an end user's write runs through the trigger: pure checks that read
    -- nothing but their arguments, so end users may execute them (and nothing else).
    foreach f in array array[
        'wa_transition_refusal(text, text)',
        'wa_check_owner_action(public.devices, text)',
        'wa_apply_owner_action(public.devices, text, text, text)']
    loop
        execute format('revoke all on function public.%s from public', f);
        foreach r in array array['anon', 'authenticated', 'service_role'] loop
            if exists (select 1 from pg_roles where rolname = r) then
                execute format('revoke all on function public.%s from %I', f, r);
                execute format('grant execute on function public.%s to %I', f, r);
            end if;
        end loop;
    end loop;
    if exists (select 1 from pg_roles where rolname = 'anon') then
        execute 'revoke all on function public.wa_check_owner_action(public.devices, text) from anon';
        execute 'revoke all on function public.wa_apply_owner_action(public.devices, text, text, text) from anon';
        execute 'revoke all on function public.wa_transition_refusal(text, text) from anon';
    end if;
end $$;
