#!/usr/bin/env bash
# usage: ci/check-jdeps.sh [JAR [CLASSPATH]]
# Checks that the core jar (default: java/target/latent-<version>.jar) needs only the JDK modules a light library may:
# java.base, plus java.logging and jdk.jfr when the code really uses them (jdeps lists only modules the classes
# reference). Anything else (java.desktop from java.awt / javax.imageio, a picocli or bench class left behind: jdeps
# cannot find those, and --ignore-missing-deps is not used, so a missing class fails the check too) fails, naming the
# module and the classes that pull it in. LATENT_JDEPS_ALLOWED overrides the allowed list (comma-separated).
# Why the core is kept this light, and where the CLI, plots and benchmarks went: docs/decisions.md ("Core jar split").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION=0.2.0
JAR="${1:-$ROOT/java/target/latent-$VERSION.jar}"
CLASSPATH_ARG="${2:-}"   # the jar's own dependencies, when it has any (the core has none)
ALLOWED="${LATENT_JDEPS_ALLOWED:-java.base,java.logging,jdk.jfr}"
[ -f "$JAR" ] || { echo "check-jdeps: $JAR not found (build first)" >&2; exit 1; }
JDEPS="${JAVA_HOME:+$JAVA_HOME/bin/}jdeps"
name=$(basename "$JAR")
# jdeps exits non-zero (and names the class) when a referenced class is in no module it can see: a dependency the
# jar does not declare, e.g. picocli.
cp_opt=()
[ -n "$CLASSPATH_ARG" ] && cp_opt=(--class-path "$CLASSPATH_ARG")
if ! deps=$("$JDEPS" --multi-release base "${cp_opt[@]}" --print-module-deps "$JAR" 2>&1); then
  echo "check-jdeps: jdeps failed on $name (a class it references is not in the JDK):" >&2
  echo "$deps" | head -20 >&2
  exit 1
fi
deps=$(echo "$deps" | tail -1)
echo "check-jdeps: $name needs $deps (allowed: $ALLOWED)"
bad=""
for m in $(echo "$deps" | tr ',' ' '); do
  case ",$ALLOWED," in *",$m,"*) ;; *) bad="$bad $m" ;; esac
done
if [ -n "$bad" ]; then
  for m in $bad; do
    echo "check-jdeps: $name must not need $m; pulled in by:"
    "$JDEPS" --multi-release base "${cp_opt[@]}" -verbose:class "$JAR" 2>/dev/null | awk -v mod="$m" '$NF == mod || $(NF) ~ mod {print "  " $0}' | head -20
  done
  echo "check-jdeps: keep java.desktop, picocli and the benchmarks in latent-cli / latent-bench (docs/decisions.md)" >&2
  exit 1
fi
echo "check-jdeps: ok"
