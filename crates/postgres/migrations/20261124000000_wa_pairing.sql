-- wa-pairing: devices, their WhatsApp auth state, leases with fences, and change notifications.
--
-- Applied by `supabase db push` on a Supabase project, or by wa-pairing-postgres's migrate()
-- on any PostgreSQL 13+. Idempotent. Compatible with the original (Baileys-era) `devices`
-- table: existing rows and columns are kept and our columns are added.
--
-- Row-level security for Supabase's roles (`anon`, `authenticated`, `service_role`, and
-- `auth.uid()`) is set up only where those roles exist, so plain PostgreSQL works too.

-- ------------------------------------------------------------------ devices
create table if not exists public.devices (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null,
    device_name text,
    status text,
    phone_number text,
    connection_method text,
    phone_for_pairing text,
    pairing_code text,
    qr_code text,
    session_data jsonb,
    error_message text,
    last_connected_at timestamptz
);

alter table public.devices add column if not exists pairing_code_expires_at timestamptz;
alter table public.devices add column if not exists retry_after timestamptz;
alter table public.devices add column if not exists lease_owner text;
alter table public.devices add column if not exists lease_expires_at timestamptz;
alter table public.devices add column if not exists lease_fence bigint not null default 0;
alter table public.devices add column if not exists created_at timestamptz not null default now();
alter table public.devices add column if not exists updated_at timestamptz not null default now();

update public.devices set status = 'disconnected' where status is null;
update public.devices set connection_method = 'pairing' where connection_method is null;
update public.devices set device_name = '' where device_name is null;
alter table public.devices alter column status set default 'disconnected';
alter table public.devices alter column status set not null;
alter table public.devices alter column connection_method set default 'pairing';
alter table public.devices alter column connection_method set not null;
alter table public.devices alter column device_name set default '';
alter table public.devices alter column device_name set not null;

do $$
begin
    if not exists (select 1 from pg_constraint where conname = 'devices_status_check' and conrelid = 'public.devices'::regclass) then
        alter table public.devices add constraint devices_status_check
            check (status in ('connecting', 'waiting_pairing', 'connected', 'disconnected', 'failed'));
    end if;
    if not exists (select 1 from pg_constraint where conname = 'devices_connection_method_check' and conrelid = 'public.devices'::regclass) then
        alter table public.devices add constraint devices_connection_method_check
            check (connection_method in ('pairing', 'qr'));
    end if;
end $$;

-- Claiming work is an index scan however many devices exist: free leases by age, lapsed
-- leases by expiry; devices that need no worker are not in either index.
create index if not exists devices_claim_free_idx on public.devices (updated_at)
    where status in ('connecting', 'waiting_pairing', 'connected') and lease_owner is null;
create index if not exists devices_claim_lapsed_idx on public.devices (lease_expires_at)
    where status in ('connecting', 'waiting_pairing', 'connected') and lease_owner is not null;
create index if not exists devices_user_idx on public.devices (user_id, created_at);

-- ------------------------------------------------------------------ auth state
create table if not exists public.device_auth_state (
    device_id uuid not null references public.devices (id) on delete cascade,
    key text collate "C" not null,
    value bytea not null,
    updated_at timestamptz not null default now(),
    primary key (device_id, key)
);

-- ------------------------------------------------------------------ status transitions
-- The same rules as DeviceStatus::check_transition in wa-pairing-store: null when allowed,
-- otherwise why not.
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
            ('disconnected', 'connecting'), ('failed', 'connecting'), ('failed', 'disconnected')
        ) then null
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

-- ------------------------------------------------------------------ leases
create or replace function public.wa_claim_devices(p_owner text, p_limit integer, p_lease_seconds double precision)
returns setof public.devices
language sql
as $$
    with candidates as (
        (select id from public.devices
          where status in ('connecting', 'waiting_pairing', 'connected') and lease_owner is null
          order by updated_at limit p_limit)
        union all
        (select id from public.devices
          where status in ('connecting', 'waiting_pairing', 'connected') and lease_owner is not null
            and lease_expires_at < now()
          order by lease_expires_at limit p_limit)
    ), picked as (
        select d.id from public.devices d
         where d.id in (select id from candidates)
           and d.status in ('connecting', 'waiting_pairing', 'connected')
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

create or replace function public.wa_renew_leases(p_owner text, p_device_ids uuid[], p_fences bigint[], p_lease_seconds double precision)
returns table (device_id uuid, lease_fence bigint, lease_expires_at timestamptz)
language sql
as $$
    update public.devices d
       set lease_expires_at = now() + make_interval(secs => p_lease_seconds)
      from unnest(p_device_ids, p_fences) as l(id, fence)
     where d.id = l.id and d.lease_fence = l.fence and d.lease_owner = p_owner
    returning d.id, d.lease_fence, d.lease_expires_at
$$;

create or replace function public.wa_release_lease(p_device_id uuid, p_fence bigint)
returns boolean
language sql
as $$
    with released as (
        update public.devices
           set lease_owner = null, lease_expires_at = null
         where id = p_device_id and lease_fence = p_fence and lease_owner is not null
        returning 1
    )
    select exists (select 1 from released)
$$;

-- Locks the device row against a concurrent claim and checks the caller holds its lease.
create or replace function public.wa_check_fence(p_device_id uuid, p_fence bigint)
returns void
language plpgsql
as $$
begin
    perform 1 from public.devices
     where id = p_device_id and lease_fence = p_fence and lease_owner is not null
       for share;
    if not found then
        if exists (select 1 from public.devices where id = p_device_id) then
            raise exception using errcode = 'WAL01', message = 'lease lost';
        end if;
        raise exception using errcode = 'WAN01', message = 'device not found';
    end if;
end
$$;

create or replace function public.wa_update_device(p_device_id uuid, p_fence bigint, p_patch jsonb)
returns public.devices
language plpgsql
as $$
declare
    d public.devices;
    reason text;
begin
    select * into d from public.devices where id = p_device_id for update;
    if not found then
        raise exception using errcode = 'WAN01', message = 'device not found';
    end if;
    if d.lease_fence <> p_fence or d.lease_owner is null then
        raise exception using errcode = 'WAL01', message = 'lease lost';
    end if;
    if p_patch ? 'status' then
        reason := public.wa_transition_refusal(d.status, p_patch->>'status');
        if reason is not null then
            raise exception using errcode = 'WAT01',
                message = format('cannot move a device from %s to %s: %s', d.status, p_patch->>'status', reason);
        end if;
    end if;
    update public.devices set
        status = case when p_patch ? 'status' then p_patch->>'status' else status end,
        phone_number = case when p_patch ? 'phone_number' then p_patch->>'phone_number' else phone_number end,
        pairing_code = case when p_patch ? 'pairing_code' then p_patch->>'pairing_code' else pairing_code end,
        pairing_code_expires_at = case when p_patch ? 'pairing_code_expires_at'
            then (p_patch->>'pairing_code_expires_at')::timestamptz else pairing_code_expires_at end,
        qr_code = case when p_patch ? 'qr_code' then p_patch->>'qr_code' else qr_code end,
        error_message = case when p_patch ? 'error_message' then p_patch->>'error_message' else error_message end,
        retry_after = case when p_patch ? 'retry_after'
            then (p_patch->>'retry_after')::timestamptz else retry_after end,
        last_connected_at = case when p_patch ? 'last_connected_at'
            then (p_patch->>'last_connected_at')::timestamptz else last_connected_at end,
        updated_at = now()
     where id = p_device_id
    returning * into d;
    return d;
end
$$;

-- ------------------------------------------------------------------ owner actions
-- Each revokes the lease (owner cleared, fence bumped): the runner holding the device stops
-- at its next write, and a runner claims it afresh.
create or replace function public.wa_start_pairing(p_device_id uuid, p_method text, p_phone text)
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
    if d.status = 'connected' then
        raise exception using errcode = 'WAT01',
            message = 'cannot move a device from connected to connecting: the device is already linked; disconnect it before linking it again';
    end if;
    if d.retry_after is not null and d.retry_after > now() then
        raise exception using errcode = 'WAR01',
            message = format('WhatsApp is limiting pairing for this number: try again in %s minutes',
                             ceil(extract(epoch from d.retry_after - now()) / 60)),
            hint = ceil(extract(epoch from d.retry_after - now()))::text;
    end if;
    if p_method not in ('pairing', 'qr') then
        raise exception using errcode = 'WAI01', message = 'unknown connection method: use pairing or qr';
    end if;
    if p_method = 'pairing' and (p_phone is null or p_phone !~ '^[1-9][0-9]{6,14}$') then
        raise exception using errcode = 'WAI01',
            message = 'the phone number must be E.164 digits without +, for example 6281234567890';
    end if;
    update public.devices set
        status = 'connecting',
        connection_method = p_method,
        phone_for_pairing = case when p_method = 'pairing' or p_phone is not null then p_phone else phone_for_pairing end,
        pairing_code = null, pairing_code_expires_at = null, qr_code = null,
        error_message = null, retry_after = null,
        lease_owner = null, lease_expires_at = null, lease_fence = lease_fence + 1,
        updated_at = now()
     where id = p_device_id
    returning * into d;
    return d;
end
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
    return public.wa_start_pairing(p_device_id, d.connection_method, d.phone_for_pairing);
end
$$;

create or replace function public.wa_stop_device(p_device_id uuid)
returns public.devices
language plpgsql
as $$
declare
    d public.devices;
begin
    update public.devices set
        status = 'disconnected',
        pairing_code = null, pairing_code_expires_at = null, qr_code = null,
        lease_owner = null, lease_expires_at = null, lease_fence = lease_fence + 1,
        updated_at = now()
     where id = p_device_id
    returning * into d;
    if not found then
        raise exception using errcode = 'WAN01', message = 'device not found';
    end if;
    return d;
end
$$;

-- ------------------------------------------------------------------ auth state
create or replace function public.wa_auth_put(p_device_id uuid, p_fence bigint, p_keys text[], p_values bytea[])
returns void
language plpgsql
as $$
begin
    perform public.wa_check_fence(p_device_id, p_fence);
    insert into public.device_auth_state (device_id, key, value)
    select p_device_id, k, v from unnest(p_keys, p_values) as t(k, v)
    on conflict (device_id, key) do update set value = excluded.value, updated_at = now();
end
$$;

create or replace function public.wa_auth_delete(p_device_id uuid, p_fence bigint, p_keys text[])
returns void
language plpgsql
as $$
begin
    perform public.wa_check_fence(p_device_id, p_fence);
    delete from public.device_auth_state where device_id = p_device_id and key = any (p_keys);
end
$$;

create or replace function public.wa_auth_delete_prefix(p_device_id uuid, p_fence bigint, p_prefix text)
returns bigint
language plpgsql
as $$
declare
    n bigint;
begin
    perform public.wa_check_fence(p_device_id, p_fence);
    delete from public.device_auth_state
     where device_id = p_device_id and key >= p_prefix collate "C"
       and left(key, length(p_prefix)) = p_prefix;
    get diagnostics n = row_count;
    return n;
end
$$;

create or replace function public.wa_auth_clear(p_device_id uuid, p_fence bigint)
returns void
language plpgsql
as $$
begin
    perform public.wa_check_fence(p_device_id, p_fence);
    delete from public.device_auth_state where device_id = p_device_id;
end
$$;

create or replace function public.wa_auth_get(p_device_id uuid, p_key text)
returns bytea
language sql
stable
as $$
    select value from public.device_auth_state where device_id = p_device_id and key = p_key
$$;

-- Prefix matched literally (never as a LIKE pattern), in byte order of the key.
create or replace function public.wa_auth_scan(p_device_id uuid, p_prefix text)
returns table (key text, value bytea)
language sql
stable
as $$
    select s.key, s.value from public.device_auth_state s
     where s.device_id = p_device_id and s.key >= p_prefix collate "C"
       and left(s.key, length(p_prefix)) = p_prefix
     order by s.key
$$;

-- ------------------------------------------------------------------ change notifications
-- Announces inserts, deletes, releases and every change but lease bookkeeping (claims and
-- renewals), so an idle fleet sends nothing however many devices it holds.
create or replace function public.wa_notify_device_change()
returns trigger
language plpgsql
as $$
begin
    if tg_op = 'UPDATE'
       and (new.status, new.device_name, new.user_id, new.phone_number, new.connection_method,
            new.phone_for_pairing, new.pairing_code, new.pairing_code_expires_at, new.qr_code,
            new.error_message, new.retry_after, new.last_connected_at)
           is not distinct from
           (old.status, old.device_name, old.user_id, old.phone_number, old.connection_method,
            old.phone_for_pairing, old.pairing_code, old.pairing_code_expires_at, old.qr_code,
            old.error_message, old.retry_after, old.last_connected_at)
       and not (old.lease_owner is not null and new.lease_owner is null)
    then
        return null;
    end if;
    perform pg_notify('wa_device_changes', coalesce(new.id, old.id)::text);
    return null;
end
$$;

drop trigger if exists devices_notify on public.devices;
create trigger devices_notify
    after insert or update or delete on public.devices
    for each row execute function public.wa_notify_device_change();

-- ------------------------------------------------------------------ end users
-- Rows written by end users (the original frontend updates `status` directly): only
-- `connecting` or `disconnected`, with the same effect as the owner actions above.
create or replace function public.wa_guard_user_writes()
returns trigger
language plpgsql
as $$
begin
    if current_user not in ('authenticated', 'anon') then
        return new;
    end if;
    if tg_op = 'INSERT' then
        if new.status not in ('connecting', 'disconnected') then
            raise exception using errcode = 'WAI01', message = 'a new device starts as connecting or disconnected';
        end if;
        new.lease_owner := null; new.lease_expires_at := null; new.lease_fence := 0;
        new.session_data := null;
        return new;
    end if;
    if new.status is distinct from old.status
       or new.phone_for_pairing is distinct from old.phone_for_pairing
       or new.connection_method is distinct from old.connection_method then
        if new.status not in ('connecting', 'disconnected') then
            raise exception using errcode = 'WAT01', message = 'end users may only start (connecting) or stop (disconnected) pairing';
        end if;
        if new.status = 'connecting' and old.status = 'connected' then
            raise exception using errcode = 'WAT01',
                message = 'the device is already linked; disconnect it before linking it again';
        end if;
        new.pairing_code := null; new.pairing_code_expires_at := null; new.qr_code := null;
        if new.status = 'connecting' then
            new.error_message := null;
        end if;
        new.lease_owner := null; new.lease_expires_at := null; new.lease_fence := old.lease_fence + 1;
    end if;
    new.updated_at := now();
    return new;
end
$$;

drop trigger if exists devices_guard_user_writes on public.devices;
create trigger devices_guard_user_writes
    before insert or update on public.devices
    for each row execute function public.wa_guard_user_writes();

-- ------------------------------------------------------------------ row-level security
alter table public.devices enable row level security;
alter table public.device_auth_state enable row level security;

do $$
begin
    if exists (select 1 from pg_roles where rolname = 'authenticated')
       and exists (select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                    where n.nspname = 'auth' and p.proname = 'uid') then
        revoke all on public.devices from authenticated;
        revoke all on public.device_auth_state from authenticated;
        grant select (id, user_id, device_name, status, phone_number, connection_method,
                      phone_for_pairing, pairing_code, pairing_code_expires_at, qr_code,
                      error_message, retry_after, last_connected_at, created_at, updated_at)
            on public.devices to authenticated;
        grant insert (user_id, device_name, status, connection_method, phone_for_pairing)
            on public.devices to authenticated;
        grant update (device_name, status, connection_method, phone_for_pairing)
            on public.devices to authenticated;
        grant delete on public.devices to authenticated;
        drop policy if exists devices_own_select on public.devices;
        create policy devices_own_select on public.devices for select to authenticated
            using (user_id = auth.uid());
        drop policy if exists devices_own_insert on public.devices;
        create policy devices_own_insert on public.devices for insert to authenticated
            with check (user_id = auth.uid());
        drop policy if exists devices_own_update on public.devices;
        create policy devices_own_update on public.devices for update to authenticated
            using (user_id = auth.uid()) with check (user_id = auth.uid());
        drop policy if exists devices_own_delete on public.devices;
        create policy devices_own_delete on public.devices for delete to authenticated
            using (user_id = auth.uid());
    end if;
    if exists (select 1 from pg_roles where rolname = 'anon') then
        revoke all on public.devices from anon;
        revoke all on public.device_auth_state from anon;
    end if;
    if exists (select 1 from pg_roles where rolname = 'service_role') then
        grant all on public.devices, public.device_auth_state to service_role;
    end if;
end $$;

-- The functions are for the service (runner, API); end users act through table updates.
do $$
declare
    f text;
begin
    foreach f in array array[
        'wa_claim_devices(text, integer, double precision)',
        'wa_renew_leases(text, uuid[], bigint[], double precision)',
        'wa_release_lease(uuid, bigint)', 'wa_check_fence(uuid, bigint)',
        'wa_update_device(uuid, bigint, jsonb)', 'wa_start_pairing(uuid, text, text)',
        'wa_refresh_pairing(uuid)', 'wa_stop_device(uuid)',
        'wa_auth_put(uuid, bigint, text[], bytea[])', 'wa_auth_delete(uuid, bigint, text[])',
        'wa_auth_delete_prefix(uuid, bigint, text)', 'wa_auth_clear(uuid, bigint)',
        'wa_auth_get(uuid, text)', 'wa_auth_scan(uuid, text)']
    loop
        execute format('revoke all on function public.%s from public', f);
        if exists (select 1 from pg_roles where rolname = 'service_role') then
            execute format('grant execute on function public.%s to service_role', f);
        end if;
    end loop;
end $$;
