-- wa-pairing, sixth migration: the arguments a REST client may leave out have defaults.
--
-- The Supabase backend calls these functions through PostgREST (`/rest/v1/rpc/...`).
-- PostgREST hands a JSON `null` argument to PostgreSQL as NULL, but not every
-- PostgREST-compatible server does (postrust passes the text `null`, which a `text` argument
-- keeps and a `uuid` argument refuses). A client that leaves an absent argument out works
-- with both: PostgREST picks the function by the arguments given, defaults included.
-- Same bodies, same grants (`create or replace` keeps them); only the defaults are new.
-- Idempotent; applies as plain SQL.

-- A QR pairing has no number: `p_phone` may be left out.
create or replace function public.wa_start_pairing(p_device_id uuid, p_method text, p_phone text default null)
returns public.devices
language sql
as $$
    select * from public.wa_owner_action(p_device_id, 'start_pairing', p_method, p_phone)
$$;

-- The first page has no `p_after`: it may be left out (and `p_limit` after it, then 100).
create or replace function public.wa_auth_devices(p_after uuid default null, p_limit integer default 100)
returns setof uuid
language sql
stable
as $$
    select distinct device_id from public.device_auth_state
     where p_after is null or device_id > p_after
     order by device_id
     limit p_limit
$$;
