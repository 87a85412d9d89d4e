-- wa-pairing, sixth migration: calls that leave an absent argument out.
--
-- The Supabase backend calls these functions through PostgREST (`/rest/v1/rpc/...`).
-- PostgREST hands a JSON `null` argument to PostgreSQL as NULL, but not every
-- PostgREST-compatible server does (postrust passes the text `null`, which a `text` argument
-- keeps and a `uuid` argument refuses). A client that leaves an absent argument out works
-- with both: PostgREST picks the function by the names of the arguments given. So the two
-- calls that have an absent argument get an overload without it. (Defaults on the existing
-- functions would do the same, but the earlier migrations, applied again as plain SQL,
-- would then try to remove them, which PostgreSQL refuses.)
-- Idempotent; applies as plain SQL.

-- A QR pairing: no number.
create or replace function public.wa_start_pairing(p_device_id uuid, p_method text)
returns public.devices
language sql
as $$
    select * from public.wa_start_pairing(p_device_id, p_method, null::text)
$$;

-- The first page of devices holding auth state: nothing to start after.
create or replace function public.wa_auth_devices(p_limit integer)
returns setof uuid
language sql
stable
as $$
    select * from public.wa_auth_devices(null::uuid, p_limit)
$$;

-- The service's functions, like the ones they call: the service role only (Supabase grants
-- EXECUTE on new functions to anon and authenticated directly, so those are revoked by name).
do $$
declare
    f text;
    r text;
begin
    foreach f in array array['wa_start_pairing(uuid, text)', 'wa_auth_devices(integer)'] loop
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
end $$;
