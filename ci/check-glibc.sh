#!/usr/bin/env bash
# Checks that a shared library (default: the shipped liblatent.so) loads on glibc 2.28 or later: lists every GLIBC_
# symbol version it requires (its version references, what ld.so checks at load) and fails when one is newer than
# the limit, naming the symbols that pull it in. The limit is 2.28 (RHEL 8, Ubuntu 20.04 era hosts); LATENT_GLIBC_MAX
# overrides it. How liblatent.so stays under it: native/src/glibc_compat.h, docs/decisions.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIB="${1:-$ROOT/java/target/native/liblatent.so}"
MAX="${LATENT_GLIBC_MAX:-2.28}"
[ -f "$LIB" ] || { echo "check-glibc: $LIB not found (build first)" >&2; exit 1; }
command -v objdump >/dev/null || { echo "check-glibc: objdump not found (binutils)" >&2; exit 1; }
name=$(basename "$LIB")
# "Version References" of objdump -p: one "0x... 0x.. NN GLIBC_x.y" line per version needed from each library.
needed=$(objdump -p "$LIB" | awk '/^Version References:/ {r=1; next} r && /^[^ \t]/ {r=0} r {print $NF}' |
         grep -E '^GLIBC_[0-9]+(\.[0-9]+)*$' | sed 's/^GLIBC_//' | sort -uV)
[ -n "$needed" ] || { echo "check-glibc: $name has no GLIBC version references (not a dynamically linked glibc library?)" >&2; exit 1; }
echo "check-glibc: $name needs GLIBC $(echo $needed | sed 's/ /, /g') (allowed: <= $MAX)"
too_new=$(for v in $needed; do
  [ "$v" = "$MAX" ] && continue
  [ "$(printf '%s\n%s\n' "$MAX" "$v" | sort -V | tail -1)" = "$v" ] && echo "$v"
done || true)
if [ -n "$too_new" ]; then
  for v in $too_new; do
    syms=$(objdump -T "$LIB" | awk -v ver="GLIBC_$v" '{ for (i = 1; i < NF; i++) { t = $i; gsub(/[()]/, "", t); if (t == ver) print $NF } }' | sort -u | tr '\n' ' ')
    echo "check-glibc: GLIBC_$v is newer than $MAX, needed by: ${syms:-(no symbol named)}"
  done
  echo "check-glibc: pin those symbols to an older version in native/src/glibc_compat.h, or avoid them" >&2
  exit 1
fi
echo "check-glibc: ok"
