#!/bin/bash
# GPU checks for issue 7: the CUDA tests on the real driver, the kernel bench vs cuBLAS/cuDNN, GPT on the device.
# usage: bash bench/cuda/gpu_checks.sh OUTDIR [DRIVER]   (DRIVER: libcuda.so.1, or libcuda_emu.so for a dry run here)
cd "$(dirname "$0")/../.."
O=${1:?out}; DRV=${2:-libcuda.so.1}; G=$PWD/.gpu; mkdir -p $O  # the kit: bench/cuda/make_gpu_kit.sh
PY=${PY:-python3}; STEPS=${STEPS:-all}
[ -x /tmp/jre/bin/java ] || tar xJf $G/jre.tar.xz -C /tmp
J=/tmp/jre/bin/java
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.total --format=csv | tee $O/gpu.txt
CP=$G/lib/latent.jar:$G/lib/latent-cli.jar:$G/lib/test-classes.jar:$G/lib/cli-test-classes.jar:$G/lib/picocli.jar
P="--enable-native-access=ALL-UNNAMED -Dlatent.library.path=$G/native/liblatent.so -Dlatent.cuda.fatbin=$G/native/latent_kernels.fatbin -Dlatent.cuda.driver=$DRV"
rc=0
if [[ $STEPS == all || $STEPS == *tests* ]]; then
  echo "== java tests"; SEL=${SEL:---select-package dev.latent.cuda --select-class dev.latent.cli.CudaCliTest}
  timeout 240 $J -Xmx16g $P -jar $G/lib/junit.jar execute --class-path $CP $SEL --exclude-classname '.*CudaUnavailableTest' \
    --details=tree --disable-banner --reports-dir /tmp/junit-reports > $O/tests.log 2>&1; r=$?; tail -60 $O/tests.log; ok=$(grep -o "\[ *[0-9]* tests successful" $O/tests.log | grep -o "[0-9]*"); [ "${ok:-0}" -gt 0 ] || r=9; echo "tests rc=$r ($ok successful)"; rc=$((rc|r))
fi
if [[ $STEPS == all || $STEPS == *bench* ]]; then
  echo "== bench"; EMU=""; [ "$DRV" != libcuda.so.1 ] && EMU="--emulated $DRV"
  timeout 240 $PY bench/cuda/gpu_bench.py $EMU --fatbin $G/native/latent_kernels.fatbin --out $O/gpu_bench.json > $O/bench.log 2>&1; r=$?; grep -v NNPACK $O/bench.log; echo "bench rc=$r"; rc=$((rc|r))
fi
if [[ $STEPS == all || $STEPS == *gpt* ]]; then
  echo "== gpt"; GS=${GPT_STEPS:-60}
  for cfg in small big; do
    A="$GPT_ARGS"; S=$GS; [ $cfg = big ] && { A="--layers 6 --heads 6 --dim 384 --context 256 --batch 32 $GPT_ARGS"; S=$((GS/3)); }
    for dev in cuda cpu; do
      timeout 150 $J -Xmx8g $P -cp $CP dev.latent.cli.Main train gpt --data $G/text.txt --out /tmp/gpt-$cfg-$dev --device $dev --steps $S \
        --eval-interval $S --eval-batches 5 --log-interval 5 --checkpoint-interval 0 --sample-tokens 40 $A > /tmp/gpt-$cfg-$dev.log 2>&1; r=$?; cat /tmp/gpt-$cfg-$dev.log >> $O/gpt.log
      grep -m3 "device\|data:" /tmp/gpt-$cfg-$dev.log; tail -4 /tmp/gpt-$cfg-$dev.log; tail -2 /tmp/gpt-$cfg-$dev/metrics.jsonl 2>/dev/null
      echo "gpt $cfg $dev rc=$r"; rc=$((rc|r))
    done
  done
fi
if [[ $STEPS == all || $STEPS == *models* ]] && [ -d $G/fmnist ]; then
  echo "== models on Fashion-MNIST (cuda, then cpu on this machine's cores)"
  run() { local name=$1; shift
    for dev in cuda cpu; do
      timeout ${MODEL_TIMEOUT:-150} $J -Xmx16g $P -cp $CP dev.latent.cli.Main "$@" --data $G/fmnist --out /tmp/$name-$dev --device $dev \
        > /tmp/$name-$dev.log 2>&1; r=$?; cat /tmp/$name-$dev.log >> $O/models.log
      echo "-- $name $dev rc=$r"; grep -m2 "device\|CUDA" /tmp/$name-$dev.log; tail -3 /tmp/$name-$dev.log; rc=$((rc|r))
    done; }
  run vae train vae --epochs 1 --iwae-k 20 --iwae-n 200 ${VAE_ARGS}
  run dcgan train dcgan --iters ${DCGAN_ITERS:-300} --log-interval 100 ${DCGAN_ARGS}
  run realnvp train realnvp ${REALNVP_ARGS:---max-steps 200 --test-limit 2000}
fi
exit $rc
