#!/usr/bin/env bash
# Checks that liblatent.so exports exactly the lt_* functions declared in native/include/latent.h:
# nothing else leaks (hidden visibility), and nothing declared is missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIB="${1:-$ROOT/java/target/native/liblatent.so}"
[ -f "$LIB" ] || { echo "check-exports: $LIB not found (build first)" >&2; exit 1; }
exported=$(nm -D --defined-only "$LIB" | awk '$2 ~ /^[TtWiDdBbRr]$/ {print $3}' | sort -u)
declared=$(grep -oE 'LT_API [^;(]*\b(lt_[a-z0-9_]+)\s*\(' "$ROOT/native/include/latent.h" | grep -oE 'lt_[a-z0-9_]+\s*\($' | tr -d '( ' | sort -u)
bad=$(comm -23 <(echo "$exported") <(echo "$declared") || true)
missing=$(comm -13 <(echo "$exported") <(echo "$declared") || true)
status=0
if [ -n "$bad" ]; then echo "check-exports: exported but not declared in latent.h:"; echo "$bad" | sed 's/^/  /'; status=1; fi
if [ -n "$missing" ]; then echo "check-exports: declared in latent.h but not exported:"; echo "$missing" | sed 's/^/  /'; status=1; fi
[ $status -eq 0 ] && echo "check-exports: ok, $(echo "$exported" | wc -l) lt_* symbols exported, nothing else"
exit $status
