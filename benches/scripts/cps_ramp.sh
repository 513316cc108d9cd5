#!/usr/bin/env bash
# Ramps calls per second with SIPp (PBX -> proxy/B2BUA -> carrier, both SIPp) through voicegw and
# through Kamailio (transaction-stateful proxy, same machine, same scenario), and prints the highest
# rate each holds with under 0.1% failed calls, and the ratio.
#
#   benches/scripts/cps_ramp.sh [seconds-per-step] [rates...]
#
# VOICEGW_BIN picks the binary (A/B of two builds: run twice), TARGETS="voicegw" skips Kamailio,
# SIP_LOGS=0 turns the default configuration's EnableSIPLogs off (CDRs are always written).
#
# Needs: sipp, kamailio (Debian packages sip-tester, kamailio), a release build of voicegw.
# A proxy with several worker processes (Kamailio) may forward a 180 after the 200 over UDP; the
# PBX side therefore ignores unexpected messages instead of aborting the call
# (-default_behaviors all,-abortunexp), for both targets alike.
# Every step is bounded: it places rate*seconds calls and is killed after seconds+30 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
STEP_SECS="${1:-10}"; shift || true
RATES=("$@"); [ ${#RATES[@]} -gt 0 ] || RATES=(200 500 1000 1500 2000 3000 4000 5000 6000)
VG_IP=127.0.0.30; KM_IP=127.0.0.31
HZ=$(getconf CLK_TCK)
WORK="$(mktemp -d /tmp/voicegw-cps.XXXXXX)"
BIN="${VOICEGW_BIN:-target/release/voicegw}"
[ -x "$BIN" ] || cargo build --release -p voicegw >&2
command -v sipp >/dev/null || { echo "sipp not installed (apt-get install sip-tester)" >&2; exit 1; }
command -v kamailio >/dev/null || { echo "kamailio not installed (apt-get install kamailio)" >&2; exit 1; }
PIDS=()
# SIGKILL: a draining voicegw would hold its port for up to drain_timeout_secs after the run.
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  pkill -KILL -f "kamailio -f $WORK" 2>/dev/null || true
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# voicegw on its own loopback address, default topology, logs at warn.
# CpsLimit raised above the highest step: the ramp measures capacity, not the policy.
SIP_LOGS_SED=""
[ "${SIP_LOGS:-1}" = 0 ] && SIP_LOGS_SED="s/EnableSIPLogs = true/EnableSIPLogs = false/"
sed -e "s/127.0.0.1/$VG_IP/g" -e "s|dir = \"./var\"|dir = \"$WORK/var\"|" -e "s/CpsLimit = 1000/CpsLimit = 100000/" \
  -e "$SIP_LOGS_SED" configs/voicegw.toml > "$WORK/voicegw.toml"
RUST_LOG=warn "$BIN" run -c "$WORK/voicegw.toml" 2> "$WORK/voicegw.log" & PIDS+=($!)
VG_PID=$!
sed -e "s/LISTEN/$KM_IP/" -e "s/CARRIER/$KM_IP/" benches/kamailio/proxy.cfg > "$WORK/kamailio.cfg"
kamailio -f "$WORK/kamailio.cfg" -m 1024 -M 32 -DD -E -w "$WORK" -P "$WORK/kamailio.pid" 2> "$WORK/kamailio.log" & PIDS+=($!)
sleep 1
for p in "${PIDS[@]}"; do
  kill -0 "$p" 2>/dev/null || { echo "a server failed to start; logs in $WORK" >&2; tail -5 "$WORK"/*.log >&2; exit 1; }
done

# CPU ticks (user+system) used so far by the server under test (all Kamailio processes).
cpu_ticks() {
  local pids
  if [ "$1" = voicegw ]; then pids=$VG_PID; else pids=$(pgrep -f "kamailio -f $WORK" | tr '\n' ' '); fi
  local t=0
  for p in $pids; do t=$(( t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0) )); done
  echo "$t"
}

# One step: returns "successful failed" of the PBX side.
step() {
  local ip=$1 rate=$2 calls=$(( $2 * STEP_SECS )) tag=$3
  timeout $(( STEP_SECS + 30 )) sipp -sf tests/sipp/carrier_answer.xml -i "$ip" -p 5080 -m "$calls" \
      -nostdin -bg -trace_err -error_file "$WORK/$tag-$rate-carrier-errors.log" >/dev/null 2>&1 || true
  sleep 0.3
  timeout $(( STEP_SECS + 30 )) sipp "$ip:5060" -sf tests/sipp/pbx_caller_bye.xml -i "$ip" -p 5090 \
      -s +12065550101 -key vc_host abcdef1ghij2klmno3pqr4.voiceconnector.local \
      -r "$rate" -m "$calls" -l 20000 -default_behaviors all,-abortunexp -timeout "$(( STEP_SECS + 20 ))s" -timeout_error -nostdin \
      -trace_stat -stf "$WORK/$tag-$rate.csv" -trace_err -error_file "$WORK/$tag-$rate-pbx-errors.log" >/dev/null 2>&1 || true
  pkill -f "sipp -sf tests/sipp/carrier_answer.xml -i $ip" 2>/dev/null || true
  sleep 0.5
  awk -F';' 'NR==1{for(i=1;i<=NF;i++){if($i=="SuccessfulCall(C)")s=i;if($i=="FailedCall(C)")f=i}} END{print $s+0, $f+0}' "$WORK/$tag-$rate.csv"
}

ramp() {
  local ip=$1 tag=$2 best=0
  for r in "${RATES[@]}"; do
    local before; before=$(cpu_ticks "$tag")
    read -r ok failed < <(step "$ip" "$r" "$tag")
    local after; after=$(cpu_ticks "$tag")
    local total=$(( ok + failed ))
    local us_per_call=0
    [ "$total" -gt 0 ] && us_per_call=$(( (after - before) * 1000000 / HZ / total ))
    echo "$tag rate=$r calls=$(( r * STEP_SECS )) ok=$ok failed=$failed cpu_per_call_us=$us_per_call" >&2
    echo "$tag $r $us_per_call" >> "$WORK/cpu.txt"
    # under 0.1% failed, and every call placed completed
    if [ "$total" -ge $(( r * STEP_SECS )) ] && [ $(( failed * 1000 )) -lt "$total" ]; then best=$r; else
      grep -h -m 3 -E "Aborting|timed out|unexpected|Dead call" "$WORK/$tag-$r-pbx-errors.log" "$WORK/$tag-$r-carrier-errors.log" 2>/dev/null | cut -c1-300 >&2 || true
      break
    fi
  done
  echo "$best"
}

TARGETS="${TARGETS:-voicegw kamailio}"
VG=0; KM=0
[[ " $TARGETS " == *" voicegw "* ]] && VG=$(ramp $VG_IP voicegw)
[[ " $TARGETS " == *" kamailio "* ]] && KM=$(ramp $KM_IP kamailio)
echo "logs and SIPp error files: $WORK" >&2
trap - EXIT; cleanup
echo "highest calls/s with <0.1% failed calls (UDP, ${STEP_SECS}s steps, rates ${RATES[*]}):"
echo "  voicegw (B2BUA):            $VG"
echo "  kamailio (stateful proxy):  $KM"
if [ "$KM" -gt 0 ]; then
  awk -v a="$VG" -v b="$KM" 'BEGIN{printf "  ratio voicegw/kamailio:     %.2f\n", a/b}'
fi
# Server CPU per call (user+system, µs) at each rate both reached; the load generator shares the cores.
if [ -s "$WORK/cpu.txt" ]; then
  echo "server CPU per call (µs):  rate  voicegw  kamailio  ratio"
  for r in "${RATES[@]}"; do
    v=$(awk -v r="$r" '$1=="voicegw" && $2==r {print $3}' "$WORK/cpu.txt")
    k=$(awk -v r="$r" '$1=="kamailio" && $2==r {print $3}' "$WORK/cpu.txt")
    [ -n "$v" ] && [ -n "$k" ] && [ "$k" -gt 0 ] && awk -v r="$r" -v v="$v" -v k="$k" 'BEGIN{printf "                          %5d  %7d  %8d  %5.2f\n", r, v, k, v/k}'
  done
fi
