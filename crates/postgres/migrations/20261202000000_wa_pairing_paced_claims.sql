-- wa-pairing, third migration: paced claims. A claim serves the devices that wait on a
-- person first (pairings, unlinks), and returns at most p_resume_limit `connected` devices,
-- sessions to log in again, the longest-waiting lease first. A runner taking over a dead
-- instance's devices thereby claims only as many logins as it can make at its pace.
--
-- Mirrors `ClaimRequest::resume_limit` and the in-memory store's claim order; the same
-- conformance test (`claim_paces_resumes_after_pairings`) runs against both. Idempotent.

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
               lease_fence = d.lease_fence + 1
          from picked join chosen on chosen.id = picked.id
         where d.id = picked.id
        returning d as device, chosen.place
    )
    -- In claim order, so the runner gives the longest-waiting session the first turn.
    select (claimed.device).* from claimed order by claimed.place
$$;

-- The earlier forms: no resume limit beyond p_limit.
create or replace function public.wa_claim_devices(p_owner text, p_limit integer, p_lease_seconds double precision, p_skip uuid[])
returns setof public.devices
language sql
as $$
    select * from public.wa_claim_devices(p_owner, p_limit, p_lease_seconds, p_skip, null)
$$;

do $$
declare
    r text;
    f constant text := 'wa_claim_devices(text, integer, double precision, uuid[], integer)';
begin
    -- The service role only, as for the other claim forms (Supabase grants EXECUTE on new
    -- functions to anon and authenticated by name, so those are revoked by name too).
    execute format('revoke all on function public.%s from public', f);
    foreach r in array array['anon', 'authenticated'] loop
        if exists (select 1 from pg_roles where rolname = r) then
            execute format('revoke all on function public.%s from %I', f, r);
        end if;
    end loop;
    if exists (select 1 from pg_roles where rolname = 'service_role') then
        execute format('grant execute on function public.%s to service_role', f);
    end if;
end
$$;
