#!/usr/bin/env bash
# The service's evidence on loopback, bounded in time:
#   examples/service/loadtest.sh CHECKPOINT_DIR [CLIENTS=64] [SECONDS=60] [JSON_OUT]   (SERVICE_FLAGS="--max-batch 1" ...: server flags)
# 1. Check: the HTTP contract (200/400/405/404/413/429, deadline, clean shutdown) on an in-process server;
# 2. starts the service (serve.sh) on a free port, runs LoadTest against it (every answer compared with
#    single-threaded generation, latency percentiles, native memory and RSS from /health), then stops the
#    service with SIGTERM and checks it drained and exited cleanly.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/../../ci/find-jdk.sh"
latent_find_jdk >/dev/null
CKPT="$1"; CLIENTS="${2:-64}"; SECONDS_="${3:-60}"; JSON_OUT="${4:-}"
[ -f "$HERE/target/classpath.txt" ] || mvn -B -q -f "$HERE/pom.xml" compile
CP="$HERE/target/classes:$(cat "$HERE/target/classpath.txt")"
JAVA=("$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED)

"${JAVA[@]}" -cp "$CP" example.service.Check "$CKPT"

LOG="$(mktemp)"; trap 'rm -f "$LOG"; [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null || true' EXIT
"${JAVA[@]}" -Xms256m -Xmx256m -XX:+AlwaysPreTouch -cp "$CP" example.service.Server --checkpoint "$CKPT" --port 0 --max-concurrent 256 ${SERVICE_FLAGS:-} >"$LOG" 2>&1 &
PID=$!
for _ in $(seq 1 200); do grep -q '^READY ' "$LOG" && break; kill -0 "$PID" 2>/dev/null || { cat "$LOG"; exit 1; }; sleep 0.1; done
PORT=$(sed -n 's/^READY //p' "$LOG")
[ -n "$PORT" ] || { echo "service did not start:"; cat "$LOG"; exit 1; }
ARGS=(--url "http://127.0.0.1:$PORT" --checkpoint "$CKPT" --clients "$CLIENTS" --seconds "$SECONDS_")
[ -n "$JSON_OUT" ] && ARGS+=(--json-out "$JSON_OUT")
RC=0
"${JAVA[@]}" -cp "$CP" example.service.LoadTest "${ARGS[@]}" || RC=$?
kill -TERM "$PID"
wait "$PID" || true   # a JVM ended by SIGTERM exits 143 after its shutdown hook
PID=
grep -q "service: stopped" "$LOG" || { echo "service did not drain cleanly:"; cat "$LOG"; exit 1; }
exit $RC
