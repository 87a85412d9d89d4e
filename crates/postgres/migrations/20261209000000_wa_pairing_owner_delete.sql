-- wa-pairing, fifth migration: an end user's delete of a linked device is refused.
--
-- Deleting a row wipes its auth state and closes its session, but WhatsApp is never told:
-- the phone keeps listing the companion under Linked devices. An end user (Supabase's
-- `authenticated` role, writing rows directly) may therefore delete a device only once it
-- holds no link; a linked one must be unlinked first (status `unlinking`: a runner logs the
-- companion out of the account, wipes its keys and leaves it `disconnected`). The service's
-- API applies the same rule its own way: its delete of a linked device unlinks it, then
-- removes the row.
--
-- A device holds a link while it has a linked number (`phone_number`), is `connected`, or is
-- being unlinked; the same rule as `wa-pairing-http`'s delete. The service (its own role)
-- deletes as before. Idempotent; applies as plain SQL.

create or replace function public.wa_guard_device_deletes()
returns trigger
language plpgsql
as $$
begin
    if current_user in ('authenticated', 'anon')
       and (old.phone_number is not null or old.status in ('connected', 'unlinking')) then
        raise exception using errcode = 'WAT01',
            message = 'this device is linked to a WhatsApp account: unlink it first (set status to unlinking), then delete it once it is disconnected';
    end if;
    return old;
end
$$;

drop trigger if exists wa_guard_device_deletes on public.devices;
create trigger wa_guard_device_deletes
    before delete on public.devices
    for each row execute function public.wa_guard_device_deletes();

-- A trigger function: nobody calls it by name.
do $$
declare
    r text;
begin
    revoke all on function public.wa_guard_device_deletes() from public;
    foreach r in array array['anon', 'authenticated'] loop
        if exists (select 1 from pg_roles where rolname = r) then
            execute format('revoke all on function public.wa_guard_device_deletes() from %I', r);
        end if;
    end loop;
    if exists (select 1 from pg_roles where rolname = 'service_role') then
        grant execute on function public.wa_guard_device_deletes() to service_role;
    end if;
end $$;
