-- wa-pairing, seventh migration: one error code per thing the owner must fix.
--
-- A page that writes device rows through Supabase (supabase-js, PostgREST) reads the
-- database's SQLSTATE as the error's `code`; the HTTP API answers the same mistakes with its
-- own codes (`invalid_name`, `invalid_phone`, ...). Until now a bad name and a bad number
-- were both `WAI01`, so such a page could not tell the owner which field to fix. Now:
--
--   WAI02  the device name is refused      (the HTTP API's invalid_name)
--   WAI03  the phone number is refused     (the HTTP API's invalid_phone)
--   WAI01  any other input that is refused (the HTTP API's invalid_input)
--
-- `supabase/error-codes.json` maps every code a write can be refused with to the HTTP API's
-- code (a test checks it against the migrations and the API). The rules themselves do not
-- change: the same names and numbers are accepted and refused as before.
-- Idempotent; applies as plain SQL.

-- Lets only `p_roles` execute `p_functions` (signatures such as 'f(uuid, text)'): EXECUTE is
-- revoked from PUBLIC and, by name, from Supabase's roles (Supabase grants EXECUTE on new
-- functions to anon, authenticated and service_role directly, not through PUBLIC), then
-- granted to each of `p_roles` that exists. For the migrations from this one on.
create or replace function public.wa_restrict_execute(p_functions text[], p_roles text[])
returns void
language plpgsql
as $$
declare
    f text;
    r text;
begin
    foreach f in array p_functions loop
        execute format('revoke all on function public.%s from public', f);
        foreach r in array array['anon', 'authenticated', 'service_role'] loop
            if exists (select 1 from pg_roles where rolname = r) then
                execute format('revoke all on function public.%s from %I', f, r);
                if r = any(p_roles) then
                    execute format('grant execute on function public.%s to %I', f, r);
                end if;
            end if;
        end loop;
    end loop;
end
$$;

-- A device name that is refused: WAI02, with what to change.
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
        raise exception using errcode = 'WAI02', message = checked.problem;
    end if;
    return checked.name;
end
$$;

-- A number to pair with, as stored: what people type around the digits goes, a leading + is
-- the international prefix; what is left must be 7 to 15 digits, country code first.
-- A number that is refused: WAI03, with what to write instead.
create or replace function public.wa_normalize_phone(p_phone text)
returns text
language plpgsql
immutable
as $$
declare
    digits text;
begin
    if p_phone is null then
        return null;
    end if;
    if char_length(p_phone) > 32 then
        raise exception using errcode = 'WAI03',
            message = 'the phone number is too long: write the international number, for example 6281234567890';
    end if;
    digits := regexp_replace(regexp_replace(p_phone, '[\s().-]', '', 'g'), '^\+', '');
    if digits !~ '^[1-9][0-9]{6,14}$' then
        raise exception using errcode = 'WAI03',
            message = 'the phone number must be the international number in digits, country code first, for example 6281234567890';
    end if;
    return digits;
end
$$;

-- Runs before `devices_guard_writes` (triggers of one kind fire in name order): the number
-- of a write is checked and normalised here, so a refused number is WAI03 on every path,
-- whoever writes the row. The guard's own checks then see a valid number.
create or replace function public.wa_check_device_input()
returns trigger
language plpgsql
as $$
begin
    if tg_op = 'INSERT' or new.phone_for_pairing is distinct from old.phone_for_pairing then
        new.phone_for_pairing := public.wa_normalize_phone(new.phone_for_pairing);
    end if;
    -- An owner starting a pairing by code without a number: the number is what to fix.
    if current_user in ('authenticated', 'anon')
       and new.status = 'connecting' and new.connection_method = 'pairing'
       and new.phone_for_pairing is null
       and (tg_op = 'INSERT' or new.status is distinct from old.status
            or new.connection_method is distinct from old.connection_method
            or old.phone_for_pairing is not null) then
        raise exception using errcode = 'WAI03',
            message = 'the phone number must be the international number in digits, country code first, for example 6281234567890';
    end if;
    return new;
end
$$;

drop trigger if exists devices_check_input on public.devices;
create trigger devices_check_input
    before insert or update on public.devices
    for each row execute function public.wa_check_device_input();

-- The helper: the service role only. What an end user's write runs through the trigger:
-- the number rule (pure); never anon.
select public.wa_restrict_execute(
    array['wa_restrict_execute(text[], text[])', 'wa_check_device_input()'],
    array['service_role']);
select public.wa_restrict_execute(
    array['wa_normalize_phone(text)'], array['authenticated', 'service_role']);
