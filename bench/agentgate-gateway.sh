#!/usr/bin/env bash
# agentgate as the `gateway` of ../shared/bench/proxy-overhead.sh (its GATEWAY_CMD contract):
# a [[gateway]] with the generic preset listening on $GATEWAY_PORT in front of $UPSTREAM_URL. It
# mints its own `read` token (the harness's GET needs `read`), writes it to
# $BENCH_WORKDIR/gateway.token, then runs the daemon in the foreground.
#
#   cargo build --release
#   GATEWAY_CMD="$PWD/bench/agentgate-gateway.sh" ROUNDS=5 ../shared/bench/proxy-overhead.sh
set -euo pipefail
: "${GATEWAY_PORT:?}" "${UPSTREAM_URL:?}" "${BENCH_WORKDIR:?}"
bin=${AGENTGATE_BIN:-$(dirname "$0")/../target/release/agentgate}
d=$(mktemp -d "$BENCH_WORKDIR/agentgate.XXXXXX")
export AGENTGATE_LOG=warn

# 1. A first start, without the gateway, to mint the token.
: > "$d/plain.toml"
"$bin" serve --listen 127.0.0.1:0 --data-dir "$d/data" --config "$d/plain.toml" --ready-file "$d/ready" &
pid=$!
for _ in $(seq 200); do [ -s "$d/ready" ] && break; sleep 0.05; done
url="http://$(cat "$d/ready")"
"$bin" token create --name bench --scope read --url "$url" --data-dir "$d/data" --config "$d/plain.toml" \
  > "$d/token" 2>/dev/null
kill "$pid"; wait "$pid" 2>/dev/null || true

# 2. The gateway, in the foreground.
cat > "$d/gateway.toml" <<CONF
[[gateway]]
name = "bench"
preset = "generic"
listen = "127.0.0.1:$GATEWAY_PORT"
upstream = "$UPSTREAM_URL"
CONF
cp "$d/token" "$BENCH_WORKDIR/gateway.token"
exec "$bin" serve --listen 127.0.0.1:0 --data-dir "$d/data" --config "$d/gateway.toml"
