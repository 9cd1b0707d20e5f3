#!/usr/bin/env bash
# Starts the example service against a checkpoint (a `bin/latent train gpt --out DIR` folder):
#   examples/service/serve.sh DIR [--port 8080] [--max-concurrent 128] [--lanes N] [--max-batch 8] ... (--help)
# Builds the example on first use (needs the library installed: `mvn install -DskipTests` at the root).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/../../ci/find-jdk.sh"
latent_find_jdk >/dev/null
[ $# -ge 1 ] || { echo "usage: $0 CHECKPOINT_DIR [server flags]" >&2; exit 2; }
[ -f "$HERE/target/classpath.txt" ] || mvn -B -q -f "$HERE/pom.xml" compile >&2
exec "$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED ${SERVICE_JAVA_OPTS:-} \
  -cp "$HERE/target/classes:$(cat "$HERE/target/classpath.txt")" example.service.Server --checkpoint "$1" "${@:2}"
