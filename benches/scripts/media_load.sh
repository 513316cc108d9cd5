#!/usr/bin/env bash
# Media relay load: N concurrent G.711 calls (50 packets/s each way) through voicegw and through
# rtpengine (Debian rtpengine-daemon, userspace forwarding, driven over its ng protocol), same
# machine, same load generator (benches/src/bin/media_load.rs). Prints per step: loss, one-way
# latency through the relay (p50/p99), server CPU per relayed packet, resident memory per call;
# then the highest call count each holds with under 0.1% loss.
#
#   benches/scripts/media_load.sh [seconds-per-step] [calls...]
#   TARGETS="voicegw voicegw-b rtpengine" BIN_B=/path/to/other/voicegw ...   # A/B in one run
#   TARGETS="voicegw voicegw-stream" ...   # call-audio streaming (local sink) against relaying
#                                          # alone: CPU per call-minute, memory per call, p99
#   TARGETS="voicegw voicegw-stream voicegw-b-stream" BIN_B=... # streaming A/B of two builds
#   TARGETS="voicegw-stream voicegw-record" ...  # SIPREC recording sessions (two streams each,
#                                          # local Matroska files) against streamed calls:
#                                          # CPU per recorded stream-minute
#   TARGETS="voicegw voicegw-stream voicegw-kvs" ...  # the same streams sent to KVS: moto's
#                                          # control plane and the fake PutMedia data plane
#                                          # (tests/fakes/kvs_putmedia.py), on this machine
#
# Bounded: each step runs SECONDS (default 5) of traffic and is killed after SECONDS+60 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS="${1:-5}"; shift || true
STEPS=("$@"); [ ${#STEPS[@]} -gt 0 ] || STEPS=(50 100 200 400 800)
VG_IP=127.0.0.60; RE_IP=127.0.0.61; KVS_IP=127.0.0.62
WORK="$(mktemp -d /tmp/voicegw-media-load.XXXXXX)"
case " ${TARGETS:-voicegw rtpengine} " in *" rtpengine "*)
  command -v rtpengine >/dev/null || { echo "rtpengine not installed (apt-get install rtpengine-daemon)" >&2; exit 1; } ;;
esac
cargo build --release -q -p voicegw -p voicegw-benches --bin voicegw --bin media_load
BIN=target/release/voicegw; LOAD=target/release/media_load
sed -e "s/127.0.0.1/$VG_IP/g" -e "s|dir = \"./var\"|dir = \"$WORK/var\"|" configs/voicegw.toml > "$WORK/voicegw.toml"
# The same gateway with its voice connector's calls streamed (both legs, local Matroska files).
{ cat "$WORK/voicegw.toml"; printf '\n[VoiceConnectors.StreamingConfiguration]\nDisabled = false\nDataRetentionInHours = 0\n'; } > "$WORK/voicegw-stream.toml"

# The same streams to Kinesis Video Streams: moto and the fake data plane, started once.
{ cat "$WORK/voicegw-stream.toml"; printf '\n[streaming]\nsink = "kvs"\nregion = "us-east-1"\nkvs_endpoint = "http://%s:5055"\ndata_endpoint = "http://%s:18100"\n' "$KVS_IP" "$KVS_IP"; } > "$WORK/voicegw-kvs.toml" 2>/dev/null || true
case " ${TARGETS:-} " in *" voicegw-kvs "*)
  moto_server -H "$KVS_IP" -p 5055 >"$WORK/moto.log" 2>&1 & MOTO=$!
  python3 tests/fakes/kvs_putmedia.py --listen "$KVS_IP:18100" --state "$WORK/fake-kvs" --no-store \
    --limit-secs 7200 >"$WORK/fake-kvs.log" 2>&1 & FAKE=$!
  trap 'kill $MOTO $FAKE 2>/dev/null || true' EXIT
  sleep 3 ;;
esac

run_step() { # target calls -> JSON line
  local target=$1 calls=$2 pid
  if [ "$target" = voicegw ]; then
    RUST_LOG=warn "$BIN" run -c "$WORK/voicegw.toml" 2>>"$WORK/voicegw.log" & pid=$!
  elif [ "$target" = voicegw-stream ] || [ "$target" = voicegw-record ]; then
    rm -rf "$WORK/var/kvs"
    RUST_LOG=warn "$BIN" run -c "$WORK/voicegw-stream.toml" 2>>"$WORK/voicegw-stream.log" & pid=$!
  elif [ "$target" = voicegw-kvs ]; then
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true \
      AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null RUST_LOG=warn \
      "$BIN" run -c "$WORK/voicegw-kvs.toml" 2>>"$WORK/voicegw-kvs.log" & pid=$!
  elif [ "$target" = voicegw-b-stream ]; then
    # A/B of streaming: another voicegw binary with the streamed configuration.
    rm -rf "$WORK/var/kvs"
    RUST_LOG=warn "$BIN_B" run -c "$WORK/voicegw-stream.toml" 2>>"$WORK/voicegw-b-stream.log" & pid=$!
  elif [ "$target" = voicegw-b ]; then
    # A/B: another voicegw binary (BIN_B=path, e.g. a build of another commit) in the same run.
    RUST_LOG=warn "$BIN_B" run -c "$WORK/voicegw.toml" 2>>"$WORK/voicegw-b.log" & pid=$!
  else
    rtpengine --interface=$RE_IP --listen-ng=$RE_IP:2223 --foreground --log-stderr --log-level=3 \
      --table=-1 --port-min=30000 --port-max=40000 --no-fallback 2>>"$WORK/rtpengine.log" & pid=$!
  fi
  sleep 1
  kill -0 "$pid" 2>/dev/null || { echo "$target failed to start; see $WORK/$target.log" >&2; exit 1; }
  local ip=$VG_IP; [ "$target" = rtpengine ] && ip=$RE_IP
  local kind=$target; case "$target" in voicegw-b|voicegw-stream|voicegw-b-stream|voicegw-kvs) kind=voicegw ;; voicegw-record) kind=recording ;; esac
  { timeout $(( SECS + 60 )) "$LOAD" "$kind" "$ip" "$calls" "$SECS" "$pid" 2223 || echo "{\"target\":\"$kind\",\"calls\":$calls,\"error\":true}"; } \
    | sed "s/\"target\":\"$kind\"/\"target\":\"$target\"/"
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  if [ "$target" = voicegw-record ]; then
    # Every session's two streams were written (a check, not a figure).
    local files; files=$(find "$WORK/var/kvs" -name '*.mkv' 2>/dev/null | wc -l)
    [ "$files" -eq $(( 2 * calls )) ] || echo "voicegw-record: $files stream files for $calls sessions" >&2
  fi
  sleep 0.5
}

# Targets are interleaved within each step and each step is repeated REPS times (default 3): on
# a noisy 2-core machine a slow minute then hits every target alike, and medians are compared.
for n in "${STEPS[@]}"; do
  for rep in $(seq "${REPS:-3}"); do
    for target in ${TARGETS:-voicegw rtpengine}; do
      run_step "$target" "$n" | tee -a "$WORK/results.jsonl"
    done
    # The generator's own latency (no relay), to subtract: the same bursts endpoint to endpoint.
    timeout $(( SECS + 60 )) "$LOAD" direct "$VG_IP" "$n" "$SECS" | tee -a "$WORK/results.jsonl"
  done
done
python3 - "$WORK/results.jsonl" <<'PY'
import json, sys
from statistics import median
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
groups = {}
for r in rows:
    groups.setdefault((r["target"], r["calls"]), []).append(r)
def med(rs, k):
    v = [r[k] for r in rs if not r.get("error") and r.get(k) is not None]
    return median(v) if v else None
print("\nmedians over repetitions (n = runs):")
print("target     calls  n  max loss%   p50us  p99us  cpu_us/pkt  rss_KiB/call")
best = {}
for (t, n), rs in groups.items():
    ok = [r for r in rs if not r.get("error")]
    loss = max((r["loss_pct"] for r in ok), default=None)
    if loss is None:
        print(f"{t:10} {n:5}  error"); continue
    cpu, rss = med(ok, "cpu_us_per_packet"), med(ok, "rss_kib_per_call")
    print(f"{t:10} {n:5} {len(ok):2} {loss:9.3f} {med(ok,'latency_p50_us'):7.0f} {med(ok,'latency_p99_us'):6.0f} "
          f"{'-' if cpu is None else f'{cpu:.2f}':>11} {'-' if rss is None else f'{rss:.1f}':>13}")
    if loss < 0.1 and len(ok) == len(rs):
        best[t] = max(best.get(t, 0), n)
print("\nhighest concurrent calls with <0.1% loss in every run:", best)
print("\nadded latency (relay minus direct, medians of the same burst pattern), us:")
for (t, n), rs in groups.items():
    d = groups.get(("direct", n))
    if t not in ("direct", "voicegw-record") and d and med(rs, "latency_p99_us") is not None:
        print(f"  {t:10} calls {n:4}: p50 {med(rs,'latency_p50_us') - med(d,'latency_p50_us'):6.0f}  "
              f"p99 {med(rs,'latency_p99_us') - med(d,'latency_p99_us'):6.0f}")
def ratios(a, b):
    print(f"\nCPU per packet, {a} / {b} (ratio of medians; per-repetition ratios in brackets):")
    for n in sorted({n for (_, n) in groups}):
        v, r = groups.get((a, n), []), groups.get((b, n), [])
        mv, mr = med(v, "cpu_us_per_packet"), med(r, "cpu_us_per_packet")
        if mv and mr:
            pairs = [x["cpu_us_per_packet"] / y["cpu_us_per_packet"] for x, y in zip(v, r)
                     if not x.get("error") and not y.get("error") and x.get("cpu_us_per_packet") and y.get("cpu_us_per_packet")]
            print(f"  calls {n}: {mv / mr:.2f}  [{', '.join(f'{x:.2f}' for x in pairs)}]")
ratios("voicegw", "rtpengine")
def cost(target, what):
    ratios(target, "voicegw")
    print(f"\n{what} (medians): CPU per call-minute (6000 packets: 50/s each way), memory per call, p99")
    for n in sorted({n for (_, n) in groups}):
        a, b = groups.get((target, n), []), groups.get(("voicegw", n), [])
        ca, cb = med(a, "cpu_us_per_packet"), med(b, "cpu_us_per_packet")
        ra, rb = med(a, "rss_kib_per_call"), med(b, "rss_kib_per_call")
        pa, pb = med(a, "latency_p99_us"), med(b, "latency_p99_us")
        if ca and cb:
            print(f"  calls {n}: {ca * 6000 / 1000:.1f} ms/call-min vs relayed {cb * 6000 / 1000:.1f} "
                  f"(ratio {ca / cb:.2f}); RSS/call {ra:.1f} vs {rb:.1f} KiB; p99 {pa:.0f} vs {pb:.0f} us")
if any(t == "voicegw-stream" for (t, _) in groups):
    cost("voicegw-stream", "streaming to local files")
if any(t == "voicegw-kvs" for (t, _) in groups):
    cost("voicegw-kvs", "streaming to KVS (decode + mux + PutMedia; the fake's own CPU not counted)")
if any(t == "voicegw-record" for (t, _) in groups):
    print("\nSIPREC recording sessions (two streams each, local files), medians: CPU per recorded stream-minute (3000 packets)")
    for n in sorted({n for (_, n) in groups}):
        r, st = groups.get(("voicegw-record", n), []), groups.get(("voicegw-stream", n), [])
        cr, cs = med(r, "cpu_us_per_packet"), med(st, "cpu_us_per_packet")
        if cr:
            line = f"  sessions {n} ({2 * n} streams): {cr * 3000 / 1000:.1f} ms per stream-minute, RSS/session {med(r, 'rss_kib_per_call'):.1f} KiB"
            if cs:
                line += f"; a streamed call's leg (relayed + streamed) {cs * 6000 / 1000 / 2:.1f} ms per stream-minute"
            print(line)
if any(t == "voicegw-b-stream" for (t, _) in groups):
    ratios("voicegw-b-stream", "voicegw")
    ratios("voicegw-stream", "voicegw-b-stream")
if any(t == "voicegw-b" for (t, _) in groups):
    ratios("voicegw-b", "rtpengine")
    ratios("voicegw-b", "voicegw")
PY
