#!/usr/bin/env bash
# Media relay load: N concurrent G.711 calls (50 packets/s each way) through voicegw and through
# rtpengine (Debian rtpengine-daemon, userspace forwarding, driven over its ng protocol), same
# machine, same load generator (benches/src/bin/media_load.rs). Prints per step: loss, one-way
# latency through the relay (p50/p99), server CPU per relayed packet, resident memory per call;
# then the highest call count each holds with under 0.1% loss.
#
#   benches/scripts/media_load.sh [seconds-per-step] [calls...]
#
# Bounded: each step runs SECONDS (default 5) of traffic and is killed after SECONDS+60 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS="${1:-5}"; shift || true
STEPS=("$@"); [ ${#STEPS[@]} -gt 0 ] || STEPS=(50 100 200 400 800)
VG_IP=127.0.0.60; RE_IP=127.0.0.61
WORK="$(mktemp -d /tmp/voicegw-media-load.XXXXXX)"
command -v rtpengine >/dev/null || { echo "rtpengine not installed (apt-get install rtpengine-daemon)" >&2; exit 1; }
cargo build --release -q -p voicegw -p voicegw-benches --bin voicegw --bin media_load
BIN=target/release/voicegw; LOAD=target/release/media_load
sed -e "s/127.0.0.1/$VG_IP/g" -e "s|dir = \"./var\"|dir = \"$WORK/var\"|" configs/voicegw.toml > "$WORK/voicegw.toml"

run_step() { # target calls -> JSON line
  local target=$1 calls=$2 pid
  if [ "$target" = voicegw ]; then
    RUST_LOG=warn "$BIN" run -c "$WORK/voicegw.toml" 2>>"$WORK/voicegw.log" & pid=$!
  else
    rtpengine --interface=$RE_IP --listen-ng=$RE_IP:2223 --foreground --log-stderr --log-level=3 \
      --table=-1 --port-min=30000 --port-max=40000 --no-fallback 2>>"$WORK/rtpengine.log" & pid=$!
  fi
  sleep 1
  kill -0 "$pid" 2>/dev/null || { echo "$target failed to start; see $WORK/$target.log" >&2; exit 1; }
  local ip=$VG_IP; [ "$target" = rtpengine ] && ip=$RE_IP
  timeout $(( SECS + 60 )) "$LOAD" "$target" "$ip" "$calls" "$SECS" "$pid" 2223 || echo "{\"target\":\"$target\",\"calls\":$calls,\"error\":true}"
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  sleep 0.5
}

for target in ${TARGETS:-voicegw rtpengine}; do
  for n in "${STEPS[@]}"; do
    run_step "$target" "$n" | tee -a "$WORK/results.jsonl"
  done
done
# The generator's own latency (no relay), to subtract: the same bursts endpoint to endpoint.
for n in "${STEPS[@]}"; do
  timeout $(( SECS + 60 )) "$LOAD" direct "$VG_IP" "$n" "$SECS" | tee -a "$WORK/results.jsonl"
done
python3 - "$WORK/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
best = {}
print("\ntarget     calls  loss%   p50us  p99us  cpu_us/pkt  rss_KiB/call")
for r in rows:
    if r.get("error"):
        print(f"{r['target']:10} {r['calls']:5}  error"); continue
    print(f"{r['target']:10} {r['calls']:5} {r['loss_pct']:6.3f} {r['latency_p50_us']:7} {r['latency_p99_us']:6} {r['cpu_us_per_packet']!s:>11} {r['rss_kib_per_call']!s:>13}")
    if r["loss_pct"] < 0.1:
        best[r["target"]] = max(best.get(r["target"], 0), r["calls"])
print("\nhighest concurrent calls with <0.1% loss:", best)
base = {r["calls"]: r for r in rows if r.get("target") == "direct" and not r.get("error")}
print("\nadded latency (relay minus direct, same burst pattern), us:")
for r in rows:
    if r.get("target") in ("voicegw", "rtpengine") and not r.get("error") and r["calls"] in base:
        b = base[r["calls"]]
        print(f"  {r['target']:10} calls {r['calls']:4}: p50 {r['latency_p50_us'] - b['latency_p50_us']:6}  p99 {r['latency_p99_us'] - b['latency_p99_us']:6}")
cpu = {}
for r in rows:
    if not r.get("error") and r["cpu_us_per_packet"] is not None:
        cpu.setdefault(r["calls"], {})[r["target"]] = r["cpu_us_per_packet"]
for n, c in sorted(cpu.items()):
    if "voicegw" in c and "rtpengine" in c and c["rtpengine"]:
        print(f"calls {n}: CPU per packet voicegw/rtpengine = {c['voicegw'] / c['rtpengine']:.2f}")
PY
