#!/usr/bin/env bash
# README's test command: everything CI checks, from a clean clone, in one script.
#   0. Fashion-MNIST from Debian's package (installed when missing and apt is usable)
#   1. mvn install: liblatent.so via CMake, the Java tests (core java/ and CLI cli/) at ISA avx512 (on a CPU without
#      AVX-512 the level in use is the CPU's best, logged), the jars (incl. the native classifier), the bench module's
#      tests and the spark module's tests (Spark local mode in the test JVM: the all-reduce, N-worker vs one-process
#      bit-identity for GPT and the VAE, the same bits on 1, 2, 3 workers for DCGAN, WGAN-GP, RealNVP and Glow, stage
#      retry after a failed worker, samples / scores as Datasets; ~1.5 min, Spark's jars ~230 MB on first run)
#   1b. the core jar needs only java.base (jdeps; no java.desktop, picocli or bench classes)
#   2. the Java tests (core and CLI) again at ISA avx2 and at ISA ref (LATENT_MAX_ISA)
#   3. the native tests (ctest: each registered at ref, avx2 and avx512; avx512 says "skipped: no AVX-512" and
#      passes on a CPU without it)
#   4. the native tests again under AddressSanitizer + UndefinedBehaviorSanitizer (incl. the CUDA emulation tests
#      and kernels with deliberate out-of-bounds writes that ASan must catch)
#   4b. the CUDA emulation tests under ThreadSanitizer (fiber-annotated), incl. a deliberately racy kernel; and
#      the ptxas report of the fatbin (step 1 builds it with nvcc when nvcc is found; a spill fails that build)
#   5. the export check (only lt_* leaves liblatent.so) and the glibc check (nothing above GLIBC_2.28 needed)
#   6. fuzzing (Jazzer) of the readers of untrusted input, ~6 s per target
#   7. the consumer project under examples/, against the installed coordinates, on the class path and the module path
#   8. the service example: its HTTP contract and a short load test (8 clients x 5 s) on a GPT trained here
#   9. a one-iteration JMH smoke run (proves the harness runs; its numbers mean nothing)
# Any failure stops the script with a non-zero status.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. ci/find-jdk.sh
latent_find_jdk
echo "== JDK: $JAVA_HOME"
MVN=(mvn -B -ntp)
VERSION=0.2.0
step() { echo; echo "== $* ($(date +%H:%M:%S))"; }

step "data: Fashion-MNIST from Debian's dataset-fashion-mnist"
FMNIST=/usr/share/datasets/fashion-mnist
if [ ! -f "$FMNIST/train-images-idx3-ubyte.gz" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "Fashion-MNIST missing at $FMNIST: run 'sudo apt-get install dataset-fashion-mnist' (FashionMnistTest will fail)" >&2
  fi
fi
ls "$FMNIST" || true

step "build + Java tests at ISA avx512"
"${MVN[@]}" install -Dlatent.max.isa=avx512

step "core jar: only java.base (jdeps)"
ci/check-jdeps.sh "java/target/latent-$VERSION.jar"
# The check must be able to fail: the CLI's jar draws the plots with java.awt (java.desktop).
if jdeps_cli=$(ci/check-jdeps.sh "cli/target/latent-cli-$VERSION.jar" "$(cat cli/target/classpath.txt)" 2>&1) ||
   ! grep -q 'must not need java.desktop' <<<"$jdeps_cli"; then
  echo "check-jdeps did not refuse the CLI's jar for java.desktop:" >&2; echo "$jdeps_cli" >&2; exit 1
fi

# test-compile (up to date: seconds) before surefire:test, so that the CLI module's tests take the core from this
# reactor (java/target/classes) rather than from the local repository.
step "Java tests at ISA avx2"
"${MVN[@]}" -pl java,cli test-compile surefire:test -Dlatent.max.isa=avx2

# At ref the conv models train on conv2d_ref.c's portable loops (the step: ~1.6 min on the 2-core VM when quiet, 2.4
# before its fwd / bwd_data went across channels; ~7 min in a contended CI run before that; BENCHMARKS.md, "CI's
# ISA-ref step").
step "Java tests at ISA ref"
"${MVN[@]}" -pl java,cli test-compile surefire:test -Dlatent.max.isa=ref

step "native tests (ref, avx2 and avx512)"
(cd java/target/native && ctest --output-on-failure)

step "native tests under ASan + UBSan"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLATENT_SANITIZE=address,undefined >/dev/null
cmake --build build-asan -j2 >/dev/null
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure)

step "CUDA emulation tests and the thread pool under ThreadSanitizer"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLATENT_SANITIZE=thread -DLATENT_CUDA=OFF >/dev/null
cmake --build build-tsan -j2 --target cuda_emu_tests runtime_test >/dev/null
(cd build-tsan && ctest -L cuda_emu -j2 --output-on-failure && ctest -R '^runtime_test' --output-on-failure)
if [ -f java/target/native/cuda/ptxas-report.txt ]; then
  echo "ptxas: $(grep -c 'Compiling entry function' java/target/native/cuda/ptxas-report.txt) kernel x arch compiled, no spills"
else
  echo "nvcc not found: the CUDA fatbin was not built (the emulation tests above still ran)"
fi
# the one-call device script runs only on a lent GPU; it must at least parse here
bash -n bench/cuda/gpu_checks.sh && echo "bench/cuda/gpu_checks.sh parses"

step "export check"
ci/check-exports.sh java/target/native/liblatent.so
# The check must be able to fail: the bad-ABI fixture exports one lt_* symbol and lacks the rest.
if ci/check-exports.sh java/target/native/liblatent_badabi.so >/dev/null; then
  echo "check-exports accepted a library that lacks the declared symbols" >&2; exit 1
fi

step "glibc check (liblatent.so loads on glibc 2.28+)"
ci/check-glibc.sh java/target/native/liblatent.so
# The check must be able to fail: the fixture is built without glibc_compat.h and calls exp and pthread_create, so
# on this (2.34+) build host it needs GLIBC_2.29 and GLIBC_2.34.
if ci/check-glibc.sh java/target/native/liblatent_newglibc.so >/dev/null 2>&1; then
  echo "check-glibc accepted a library that needs GLIBC_2.29/2.34 (or the build host's glibc is older than 2.29)" >&2; exit 1
fi

step "fuzzing: safetensors/checkpoint, tokenizer files, request JSON, IDX files, PNG files, CLI options, HTTP framing (Jazzer, ~6 s each)"
# The only run of the fuzz tests (the plain test runs exclude them): each replays its committed inputs, then
# fuzzes, one JVM per target (Jazzer fuzzes one test per JVM). A finding fails the run and is saved under
# java/src/test/resources/dev/latent/fuzz/ (cli/src/test/resources/dev/latent/cli/ for the CLI's) as a regression
# input. The log is long: shown only on failure.
if ! JAZZER_FUZZ=1 "${MVN[@]}" -pl java,cli test-compile surefire:test -Dtest='*FuzzTest' -DreuseForks=false >java/target/fuzz.log 2>&1; then
  grep -v 'major version\|^WARN: Failed to instrument\|^\s*at ' java/target/fuzz.log | tail -80; exit 1
fi
grep -E 'Done [0-9]+ runs|Tests run:.*Fuzz' java/target/fuzz.log

step "consumer project on the installed artifacts (class path, then module path)"
"${MVN[@]}" -q -f examples/consumer/pom.xml compile exec:exec exec:exec@module-path

step "guide project: a VAE trained from Java code on 512 images, then served (examples/vae-java)"
VAE_TMP="$(mktemp -d)"
"${MVN[@]}" -q -f examples/vae-java/pom.xml compile exec:exec -Dout="$VAE_TMP/vae" -Dlimit=512 2>&1 | grep -v 'WARN\|INFO'
rm -rf "$VAE_TMP"

step "Spark example project on the installed artifacts (2 data-parallel workers, local[2], then sampling as a Dataset)"
SPARK_TMP="$(mktemp -d)"
cat README.md docs/*.md >"$SPARK_TMP/text.txt"
"${MVN[@]}" -q -f examples/spark/pom.xml compile exec:exec -Dcorpus="$SPARK_TMP/text.txt" -Dout="$SPARK_TMP/gpt" 2>&1 | grep -v 'WARN\|INFO'
rm -rf "$SPARK_TMP"

step "service example: HTTP contract + load test (8 clients x 5 s), image generators load test (4 clients x 3 s)"
SVC_TMP="$(mktemp -d)"
cat README.md docs/*.md >"$SVC_TMP/text.txt"
bin/latent train gpt --data "$SVC_TMP/text.txt" --out "$SVC_TMP/gpt" --steps 30 --layers 2 --dim 64 --heads 4 --context 64 \
  --batch 8 --eval-interval 1000 --sample-tokens 0 --checkpoint-interval 0 >/dev/null
"${MVN[@]}" -q -f examples/service/pom.xml compile
examples/service/loadtest.sh "$SVC_TMP/gpt" 8 5
# the image generators: a VAE trained for one short epoch, 4 clients x 3 s in process, every answer checked
bin/latent train vae --epochs 1 --limit 512 --out "$SVC_TMP/vae" >/dev/null 2>&1
"$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED -cp "examples/service/target/classes:$(cat examples/service/target/classpath.txt)" \
  example.service.ImageLoadTest "$SVC_TMP/vae" 4 3 16 2 2>&1 | grep -v 'INFO\|LatentNative get'
rm -rf "$SVC_TMP"

step "JMH smoke run"
CP="bench/target/latent-bench-$VERSION.jar:$(cat bench/target/classpath.txt)"
"$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED -cp "$CP" dev.latent.bench.jmh.RunAll --smoke 'GemmBench|FfmBench'

step "all checks passed"
