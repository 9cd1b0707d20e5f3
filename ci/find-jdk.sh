# Sourced by bin/latent and ci/*.sh: sets JAVA_HOME to a JDK >= 22 (FFM is final since 22) and puts it
# first on PATH. Tries JAVA_HOME, then the usual install locations, then `java` on PATH; stops with a
# message naming everything it tried when none qualifies.
latent_jdk_version() {  # prints the feature version of $1/bin/java, or nothing
  local v
  v=$("$1/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p' | head -n1)
  case "$v" in 1.*) echo "${v#1.}" | cut -d. -f1 ;; *) echo "$v" | cut -d. -f1 ;; esac
}

latent_find_jdk() {
  local tried=() c v best="" bestv=0
  local candidates=()
  [ -n "${JAVA_HOME:-}" ] && candidates+=("$JAVA_HOME")
  for c in /usr/lib/jvm/* /opt/java/* /opt/jdk* /usr/local/jdk* /usr/local/java/* "$HOME"/.sdkman/candidates/java/* "$HOME"/.jdks/*; do
    [ -d "$c" ] && candidates+=("$c")
  done
  if command -v java >/dev/null 2>&1; then
    c=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")
    candidates+=("$c")
  fi
  for c in "${candidates[@]}"; do
    if [ ! -x "$c/bin/java" ] || [ ! -x "$c/bin/javac" ]; then tried+=("$c (no bin/java + bin/javac)"); continue; fi
    v=$(latent_jdk_version "$c")
    if [ -z "$v" ]; then tried+=("$c (version unreadable)"); continue; fi
    if [ "$v" -ge 22 ] 2>/dev/null; then
      # JAVA_HOME wins when it qualifies; otherwise the newest JDK found.
      if [ -n "${JAVA_HOME:-}" ] && [ "$c" = "$JAVA_HOME" ]; then best="$c"; bestv="$v"; break; fi
      if [ "$v" -gt "$bestv" ]; then best="$c"; bestv="$v"; fi
    else
      tried+=("$c (Java $v < 22)")
    fi
  done
  if [ -z "$best" ]; then
    echo "latent: no JDK >= 22 found (Latent uses the Panama FFM API, final since Java 22)." >&2
    echo "latent: tried: ${tried[*]:-nothing}" >&2
    echo "latent: install one (e.g. apt-get install openjdk-25-jdk-headless, or Temurin 25) or set JAVA_HOME." >&2
    return 1
  fi
  export JAVA_HOME="$best"
  export PATH="$JAVA_HOME/bin:$PATH"
}
