#!/bin/bash
# Packs what bench/cuda/gpu_checks.sh needs on a GPU machine that has the NVIDIA driver and PyTorch but no JDK, no
# Maven and no network (the device tool's machines): a jlinked Java runtime, the jars, liblatent.so and the fatbin,
# and a text for `train gpt`. Output: .gpu/ (git-ignored by .gitignore: the device tool carries it when asked), ~25 MB.
# Run after `mvn -B -q install -DskipTests` (or package); needs JAVA_HOME at a JDK >= 22 with jlink.
set -euo pipefail
cd "$(dirname "$0")/../.."
J=${JAVA_HOME:?set JAVA_HOME to a JDK >= 22}
rm -rf .gpu && mkdir -p .gpu/lib .gpu/native
# java.desktop: the PNG charts; java.xml + jdk.zipfs: the JUnit console launcher's reports and jar scanning
"$J/bin/jlink" --add-modules java.base,java.desktop,java.logging,java.management,jdk.unsupported,java.xml,jdk.zipfs \
  --strip-debug --no-header-files --no-man-pages --output .gpu/jre
(cd .gpu && tar cJf jre.tar.xz jre && rm -rf jre)
M2=${M2_REPO:-$HOME/.m2/repository}
V=$(sed -n 's/^VERSION=//p' bin/latent)   # the one version line the launcher and ci/test.sh carry
cp java/target/latent-$V.jar .gpu/lib/latent.jar
cp cli/target/latent-cli-$V.jar .gpu/lib/latent-cli.jar   # the CLI (train gpt ...) and CudaCliTest's target
(cd java/target/test-classes && zip -qr "$OLDPWD/.gpu/lib/test-classes.jar" .)
(cd cli/target/test-classes && zip -qr "$OLDPWD/.gpu/lib/cli-test-classes.jar" .)
cp "$M2"/info/picocli/picocli/4.7.7/picocli-4.7.7.jar .gpu/lib/picocli.jar
JU="$M2/org/junit/platform/junit-platform-console-standalone/1.14.1/junit-platform-console-standalone-1.14.1.jar"
[ -f "$JU" ] || mvn -B -q dependency:get -Dartifact=org.junit.platform:junit-platform-console-standalone:1.14.1
cp "$JU" .gpu/lib/junit.jar
cp java/target/native/liblatent.so java/target/native/cuda/latent_kernels.fatbin .gpu/native/
cat README.md docs/*.md BENCHMARKS.md > .gpu/text.txt
# Fashion-MNIST for the VAE / GAN / flow runs (30 MB; Debian's dataset-fashion-mnist)
FM=/usr/share/datasets/fashion-mnist
[ -d "$FM" ] && mkdir -p .gpu/fmnist && cp "$FM"/*.gz .gpu/fmnist/
du -sh .gpu
