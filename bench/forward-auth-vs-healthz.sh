#!/usr/bin/env bash
# Requests/s of forward-auth (GET /api/v1/forward-auth/{gateway}: bearer verification + the
# gateway's table for the original method and URI, as nginx auth_request asks it) against GET
# /healthz (no auth) on the same daemon, in the same run, interleaved over several rounds.
# Goal: forward-auth/healthz >= 0.9. Prints a table and the median ratio.
#
#   bench/forward-auth-vs-healthz.sh      # ROUNDS=3 DURATION=5 CONNS=32
#
# Needs wrk (installed with apt-get when missing) and taskset; builds the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-32}
PIN=${PIN:-1}

if ! command -v wrk >/dev/null; then
  echo "installing wrk..." >&2
  apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
fi
[ -n "${AGENTGATE_BIN:-}" ] || cargo build --release --quiet

work=$(mktemp -d)
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

server_pin=(); client_pin=()
if [ "$PIN" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  server_pin=(taskset -c 0); client_pin=(taskset -c 1)
fi

printf '[[gateway]]\nname = "llm"\npreset = "openai"\n' > "$work/config.toml"
"${server_pin[@]}" "${AGENTGATE_BIN:-target/release/agentgate}" serve --listen 127.0.0.1:0 --data-dir "$work/data" \
  --config "$work/config.toml" --ready-file "$work/ready" 2>"$work/serve.log" &
pid=$!
for _ in $(seq 200); do [ -s "$work/ready" ] && break; sleep 0.05; done
[ -s "$work/ready" ] || { echo "daemon did not start:"; cat "$work/serve.log"; exit 1; }
addr=$(cat "$work/ready")
token=$(cat "$work/data/admin.token")

# Correctness first: a number for a broken endpoint is worthless.
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/healthz")" = 200 ]
fa=/api/v1/forward-auth/llm
orig=(-H "X-Original-Method: POST" -H "X-Original-URI: /v1/chat/completions")
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "${orig[@]}" "http://$addr$fa")" = 200 ]
[ "$(curl -s -o /dev/null -w '%{http_code}' "${orig[@]}" "http://$addr$fa")" = 401 ]

rps() { # path, seconds, extra wrk args...
  local path=$1 secs=$2; shift 2
  "${client_pin[@]}" wrk -t1 -c"$CONNS" -d"${secs}s" "$@" "http://$addr$path" |
    awk '/^Requests\/sec/ {print $2} /Non-2xx/ {print "ERR " $0 > "/dev/stderr"}'
}

echo "load: $(cut -d' ' -f1-3 /proc/loadavg) before the run; conns=$CONNS duration=${DURATION}s rounds=$ROUNDS"
rps /healthz "$WARMUP" >/dev/null
rps "$fa" "$WARMUP" -H "Authorization: Bearer $token" "${orig[@]}" >/dev/null
printf '%-6s %12s %12s %8s\n' round healthz fwd-auth ratio
ratios=()
for r in $(seq "$ROUNDS"); do
  h=$(rps /healthz "$DURATION")
  w=$(rps "$fa" "$DURATION" -H "Authorization: Bearer $token" "${orig[@]}")
  ratio=$(awk -v w="$w" -v h="$h" 'BEGIN {printf "%.3f", w / h}')
  ratios+=("$ratio")
  printf '%-6s %12.0f %12.0f %8s\n' "$r" "$h" "$w" "$ratio"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "forward-auth/healthz throughput ratio (median of $ROUNDS): $median (goal >= 0.9)"
