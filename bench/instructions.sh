#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: repeatable whatever else the machine
# is doing, so a change of a few hundred instructions shows where a req/s run cannot. User space
# only (the kernel's share is not counted) and SHA-256 runs in software under valgrind (the real
# CPU's SHA extensions are hidden from it): read it beside the req/s benches, not instead.
#
#   bench/instructions.sh          # N=2000 requests per target, after 300 unmeasured
#
# Targets, each over one kept-alive connection:
#   floor     examples/proxy_floor: hyper's server and client joined with nothing between
#   gateway   an agentgate gateway (token + table + header rules + proxy), same upstream (nginx)
#   healthz   GET /healthz on the daemon
#   fwdauth   GET /api/v1/forward-auth/{gateway} with a token and the original method and URI
# Prints each target's instructions per request and the ratios gateway/floor, fwdauth/healthz.
# KEEP=DIR keeps the callgrind files there (callgrind_annotate --inclusive=yes DIR/cg.PID.N).
#
# Needs valgrind, nginx and python3 (valgrind and nginx installed with apt-get when missing);
# builds the release binary and the example unless AGENTGATE_BIN and FLOOR_BIN are set.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-2000}
WARM=${WARM:-300}

for tool in valgrind nginx; do
  if ! command -v "$tool" >/dev/null && ! [ -x "/usr/sbin/$tool" ]; then
    echo "installing $tool..." >&2
    apt-get update -qq >/dev/null && apt-get install -y -qq "${tool/nginx/nginx-light}" >/dev/null
  fi
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ -z "${AGENTGATE_BIN:-}" ] || [ -z "${FLOOR_BIN:-}" ]; then
  cargo build --release --quiet --bin agentgate --example proxy_floor
fi
bin=${AGENTGATE_BIN:-$PWD/target/release/agentgate}
floor=${FLOOR_BIN:-$PWD/target/release/examples/proxy_floor}

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] && cp -r "$work" "$KEEP"; rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# The client: N GETs on one kept-alive connection; fails unless every answer is 200.
cat > "$work/client.py" <<'EOF'
import http.client, sys
port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
headers = dict(h.split(": ", 1) for h in sys.argv[4:])
c = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"{path}: {r.status}")
EOF

up=$(free_port)
cat > "$work/nginx.conf" <<EOF
daemon off; worker_processes 1; error_log $work/nginx.err warn; pid $work/nginx.pid;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$up; location / { return 200 '{"ok":true}'; } } }
EOF
"$NGINX" -c "$work/nginx.conf" -p "$work" &
pids+=($!)
wait_port "$up"

# Total instructions since the last zeroing, from a callgrind dump.
dumped() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1; exit}'; }

# measure PID PORT PATH [headers...]: instructions per request of the process under callgrind.
measure() {
  local pid=$1 port=$2 path=$3; shift 3
  python3 "$work/client.py" "$port" "$path" "$WARM" "$@"
  callgrind_control -z "$pid" >/dev/null 2>&1
  python3 "$work/client.py" "$port" "$path" "$N" "$@"
  callgrind_control -d "$pid" >/dev/null 2>&1
  local file
  file=$(ls -t "$work"/cg."$pid".* | head -1)
  echo $(( $(dumped "$file") / N ))
}

echo "load: $(cut -d' ' -f1-3 /proc/loadavg) before the run (instruction counts do not depend on it); N=$N"

fport=$(free_port)
valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" "$floor" "127.0.0.1:$fport" "127.0.0.1:$up" \
  >"$work/floor.log" 2>&1 &
fpid=$!; pids+=("$fpid")
wait_port "$fport"
floor_i=$(measure "$fpid" "$fport" /)
kill "$fpid"

# start_daemon DIR LOG_LEVEL: a daemon under callgrind with DIR/config.toml; prints its pid.
start_daemon() {
  AGENTGATE_LOG=$2 valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" "$bin" serve \
    --listen 127.0.0.1:0 --data-dir "$1/data" --config "$1/config.toml" \
    --ready-file "$1/ready" >"$1/serve.log" 2>&1 &
  echo $!
}
wait_ready() {
  for _ in $(seq 600); do [ -s "$1/ready" ] && return 0; sleep 0.1; done
  echo "daemon did not start:"; cat "$1/serve.log"; exit 1
}

# The gateway as the proxy harness runs it (bench/agentgate-gateway.sh: log level warn), in front
# of the same upstream; the API as the forward-auth bench runs it (the default level: a log line
# per request).
mkdir -p "$work/g" "$work/a"
gateway_config() {
  printf '[[gateway]]\nname = "bench"\npreset = "generic"\nlisten = "127.0.0.1:%s"\nupstream = "http://127.0.0.1:%s"\n' "$1" "$up"
}
gport=$(free_port)
gateway_config "$gport" > "$work/g/config.toml"
gateway_config "$(free_port)" > "$work/a/config.toml"
gpid=$(start_daemon "$work/g" warn); pids+=("$gpid")
apid=$(start_daemon "$work/a" info); pids+=("$apid")
wait_ready "$work/g"
wait_ready "$work/a"
auth="Authorization: Bearer $(cat "$work/g/data/admin.token")"
gateway_i=$(measure "$gpid" "$gport" / "$auth")
addr=$(cat "$work/a/ready")
aport=${addr##*:}
auth="Authorization: Bearer $(cat "$work/a/data/admin.token")"
healthz_i=$(measure "$apid" "$aport" /healthz)
fwdauth_i=$(measure "$apid" "$aport" /api/v1/forward-auth/bench "$auth" \
  "X-Original-Method: POST" "X-Original-URI: /v1/chat/completions")

printf '%-8s %14s\n' target instr/req
printf '%-8s %14s\n' floor "$floor_i" gateway "$gateway_i" healthz "$healthz_i" fwdauth "$fwdauth_i"
awk -v g="$gateway_i" -v f="$floor_i" -v h="$healthz_i" -v a="$fwdauth_i" 'BEGIN {
  printf "gateway/floor: %.3f (%+d instructions per request)\n", g / f, g - f
  printf "fwdauth/healthz: %.3f (%+d instructions per request)\n", a / h, a - h
}'
