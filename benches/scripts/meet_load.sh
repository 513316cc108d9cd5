#!/usr/bin/env bash
# Meetings under load: voicegw with MEETINGS meetings of 10 (lab setting: SIP over UDP), the
# load generator benches/src/bin/meet_load.rs dialling them all and playing every participant's
# media (three talkers per meeting). Prints per step: participants, received/sent, the bridge's
# added delay (probe p50 and max), voicegw's CPU (cores), CPU per participant-second and
# resident memory per participant. The generator shares the machine: compare steps of one run.
#
#   benches/scripts/meet_load.sh [seconds-per-step] [meetings...]
#
# Bounded: each step runs SECONDS (default 10) of media and is killed after SECONDS+60 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS="${1:-10}"; shift || true
STEPS=("$@"); [ ${#STEPS[@]} -gt 0 ] || STEPS=(5 10 20 40)
GW_IP=127.0.0.65; LOAD_IP=127.0.0.66
WORK="$(mktemp -d /tmp/voicegw-meet-load.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
cargo build --release -q -p voicegw -p voicegw-benches --bin voicegw --bin meet_load
BIN=target/release/voicegw; LOAD=target/release/meet_load
for m in "${STEPS[@]}"; do
  sed -e "s/127.0.0.1/$GW_IP/g" -e "s|dir = \"./var\"|dir = \"$WORK/var\"|" configs/voicegw.toml > "$WORK/voicegw.toml"
  { printf '\n[meet]\nallow_unencrypted = true\n'
    for i in $(seq 0 $((m - 1))); do printf '\n[[Meetings]]\nMeetingId = "%d"\nMaxParticipants = 10\n' $((7000000000 + i)); done
  } >> "$WORK/voicegw.toml"
  RUST_LOG=warn "$BIN" run -c "$WORK/voicegw.toml" 2>>"$WORK/voicegw.log" & pid=$!
  sleep 1.5
  timeout $((SECS + 60)) "$LOAD" "$GW_IP" "$LOAD_IP" "$m" 10 "$SECS" "$pid" || echo "{\"meetings\":$m,\"error\":\"load generator failed\"}"
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  rm -rf "$WORK/var"
done
