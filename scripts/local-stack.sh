#!/usr/bin/env bash
# The whole backend offline: PostgreSQL and Redis on loopback, the WhatsApp simulator, the
# production service built to trust it (with the HTTP API and the device page), an owner's
# token minted locally, and a simulated phone typing the code, until the device is
# `connected`. Prints PASS or FAIL last; stops everything it started.
#
# The commands between the two markers are docs/getting-started.md's ("Run the whole backend
# offline"), verbatim: crates/service/tests/local_stack_doc.rs fails when they differ, and
# .ci/run runs this script. What lies outside the markers is only the harness: strict mode,
# the clean-up and the verdict.
set -euo pipefail
cd "$(dirname "$0")/.."

SIM="" SERVICE="" STACK=""
finish() {
    local status=$?
    set +e
    exec 3>&-
    # The service stops gracefully on SIGTERM (sessions closed, leases released) within 30 s.
    for pid in $SERVICE $SIM; do
        kill "$pid" 2>/dev/null && timeout 40 tail --pid="$pid" -f /dev/null
        kill -KILL "$pid" 2>/dev/null
    done
    if [ "$status" -eq 0 ]; then
        echo "local stack: PASS (the device linked through the service, at the simulator)"
    else
        echo "local stack: FAIL (exit $status)" >&2
        if [ -n "$STACK" ]; then
            # The logs (redacted); not sim.jsonl, the simulator's control channel, which
            # carries whole phone numbers.
            for f in "$STACK"/service.log "$STACK"/sim.log; do
                [ -f "$f" ] && { echo "--- last lines of $(basename "$f")" >&2; tail -n 40 "$f" >&2; }
            done
        fi
    fi
    [ -n "$STACK" ] && rm -rf "$STACK"
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

# --- the documented commands: begin ---
# wait_for SECONDS COMMAND...: runs COMMAND every second until it succeeds, SECONDS at most
wait_for() { local n=$1; shift; until "$@"; do n=$((n - 1)); [ "$n" -gt 0 ] || return 1; sleep 1; done; }
STACK=$(mktemp -d)   # the logs and the phones' pipe

# 1. An empty database on the loopback PostgreSQL, and the loopback Redis
psql -q postgres://postgres@127.0.0.1:5432/postgres \
    -c 'drop database if exists wa_pairing_local with (force)' -c 'create database wa_pairing_local'
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/wa_pairing_local REDIS_URL=redis://127.0.0.1:6379

# 2. Build the simulator, and the service with the feature that lets it trust the simulator
#    (loopback only; production builds never have it); then run the two binaries themselves
#    (not `cargo run`, which would check the build again, each time)
cargo build -p wa-pairing-sim
cargo build -p wa-pairing-service --features insecure-sim
BIN="${CARGO_TARGET_DIR:-target}/debug"

# 3. The simulator: WhatsApp's server and every phone; the phones take commands on its
#    standard input, here a pipe written through descriptor 3
mkfifo "$STACK/phones"
"$BIN/wa-pairing-sim" --port 5280 <"$STACK/phones" >"$STACK/sim.jsonl" 2>"$STACK/sim.log" &
SIM=$!
exec 3>"$STACK/phones"
wait_for 30 grep -q '"listening"' "$STACK/sim.jsonl"

# 4. The service at the simulator, with the HTTP API and the device page on 127.0.0.1:3000
export WA_PAIRING_AUTH_KEYS="1:$(openssl rand -base64 32)" WA_PAIRING_MIGRATE=true
export WA_PAIRING_WA_SERVER_URL=ws://127.0.0.1:5280/ws/chat
export WA_PAIRING_HTTP_ADDR=127.0.0.1:3000 WA_PAIRING_JWT_ISSUER=http://127.0.0.1:3000/auth/v1
export SUPABASE_JWT_SECRET="$(openssl rand -hex 32)" WA_PAIRING_LOG_FORMAT=text
"$BIN/wa-pairing-service" 2>"$STACK/service.log" &
SERVICE=$!
wait_for 60 curl -fs -o /dev/null http://127.0.0.1:9464/readyz

# 5. An owner's token, minted locally (the API and the issuer are on loopback)
TOKEN=$("$BIN/wa-pairing-service" token --user 00000000-0000-4000-8000-000000000001 --ttl 1h)
api() { curl -fsS --max-time 10 -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }

# 6. The owner adds a device and asks for a code for their number
DEVICE=$(api -d '{"device_name":"Local phone"}' http://127.0.0.1:3000/api/devices | jq -r .id)
api -d '{"phone_number":"+62 812-3456-7890"}' "http://127.0.0.1:3000/api/devices/$DEVICE/pairing" >/dev/null
code_shown() { CODE=$(api "http://127.0.0.1:3000/api/devices/$DEVICE" | jq -er .pairing_code); }
wait_for 60 code_shown

# 7. The phone types it, and the device turns connected
echo "code 6281234567890 $CODE" >&3
connected() { api "http://127.0.0.1:3000/api/devices/$DEVICE" | jq -e '.status == "connected"' >/dev/null; }
wait_for 60 connected

# 8. Stop: the service closes the session and releases its lease; then the simulator
kill "$SERVICE" && wait "$SERVICE"
kill "$SIM"
# --- the documented commands: end ---
