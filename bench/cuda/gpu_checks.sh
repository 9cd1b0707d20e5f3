#!/bin/bash
# GPU checks (issues 7 and 18): the CUDA tests on the real driver and the vendor libraries, the kernel bench (ours vs
# cuBLAS / cuDNN through our FFM binding vs PyTorch's), GPT on the device with and without the vendor libraries, and
# a JSON summary ($O/summary.json) for BENCHMARKS.md's tables. One call on a lent GPU; never run without one (the dry
# run below uses the emulated driver and its CPU stand-ins instead, and times nothing that means anything).
# usage: bash bench/cuda/gpu_checks.sh OUTDIR [DRIVER]   (DRIVER: libcuda.so.1, or PATH/libcuda_emu.so for a dry run here:
#        tiny shapes; its steps stage needs a PY with torch, e.g. PY=/work/venv-torch/bin/python, and runs PyTorch on the CPU)
# env: STEPS=all|steps,hostsync,tests,bench,vendorbench,graph,familygraph,precision,gpt,decode,models,pixelcnn (exact stage names)
#      BUDGET=480 (seconds for the whole run)  PY=python3  CUBLAS=PATH  CUBLASLT=PATH  CUDNN=PATH (default: found below)
# Device time is scarce (a lent GPU: 15 minutes in all, machine start included; one command at most 10): the stages run
# most wanted first, each with a budget (seconds) that caps every command in it (tl), a stage starts only while BUDGET
# has its minimum left (else stages.txt says it was skipped), and summary.json is rewritten after every stage, so a
# run cut short keeps what it finished. Estimate on an H100 / H200 (from G1 in BENCHMARKS.md: JVM + CUDA + vendor
# libraries ~5-8 s a run, GPT 6x6x384 ~0.2 s a step on the old kernels): steps ~200 s, hostsync ~20 s, tests ~100 s,
# bench ~60 s, vendorbench ~40 s, graph ~30 s: ~450 s, inside BUDGET=480; the stages after graph run only on what is left.
# A new stage: define stage_NAME() below and add `stage NAME BUDGET MIN` to the list at the end, in its priority.
# steps (issue 18's step targets): bench/cuda/torch_steps.py trains the same models in PyTorch eager, then `latent train
# ... --device cuda --precision P` per row; steps.jsonl, one line per side and row; gpu_bench_table.py --steps prints
# the table. hostsync: HostSyncTest alone, its counts parsed into summary.json's host_syncs.
# VendorBench adds (issue 18, h-sdpa): linear + bias on cuBLASLt's BIAS epilogue vs cuBLAS + our bias kernel vs ours
# ("linear_bias" rows), cuBLASLt vs cuBLAS on the plain GEMM ("gemm_lt"), and causal attention forward through cuDNN's
# SDPA (bf16) vs our fp32 kernels ("attention_fwd", "attention_bwd"); gpu_bench.py times PyTorch's SDPA bf16 (forward,
# forward + backward) at the same shapes. Its conv rows also time cuDNN's algorithm pick (h-cudnnfind): paths
# cudnn_fixed (LATENT_CUDNN_FIND=0), cudnn_heuristic (the default) and cudnn_find (=measure), the served algorithm after
# a colon (VendorBench.convAlgoRows).
cd "$(dirname "$0")/../.."
O=${1:?out}; DRV=${2:-libcuda.so.1}; G=$PWD/.gpu; mkdir -p $O  # the kit: bench/cuda/make_gpu_kit.sh
PY=${PY:-python3}; STEPS=${STEPS:-all}
[ -x /tmp/jre/bin/java ] || tar xJf $G/jre.tar.xz -C /tmp
J=/tmp/jre/bin/java
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.total --format=csv | tee $O/gpu.txt
CP=$G/lib/latent.jar:$G/lib/latent-cli.jar:$G/lib/test-classes.jar:$G/lib/cli-test-classes.jar:$G/lib/picocli.jar
P="--enable-native-access=ALL-UNNAMED -Dlatent.library.path=$G/native/liblatent.so -Dlatent.cuda.fatbin=$G/native/latent_kernels.fatbin -Dlatent.cuda.driver=$DRV"
# The vendor libraries: where PyTorch's wheels put them (site-packages/nvidia/*/lib), unless CUBLAS / CUDNN name them.
# Naming them makes CuBlasTest / CuDnnTest fail (not skip) when they do not load. The dry run uses the stand-ins.
if [ "$DRV" != libcuda.so.1 ]; then CUBLAS=${CUBLAS:-$DRV}; CUDNN=${CUDNN:-$DRV}; TINY=--tiny; else TINY=""; fi
export LATENT_DRY_RUN=$([ -n "$TINY" ] && echo 1 || echo 0)   # summary.json's dry_run: its times say nothing about a GPU
findlib() { $PY - "$1" 2>/dev/null <<'PYEOF'
import glob, site, sys, sysconfig
roots = set(site.getsitepackages() + [site.getusersitepackages(), sysconfig.get_paths()["purelib"]])
hits = sorted(p for r in roots for p in glob.glob(r + "/nvidia/*/lib/" + sys.argv[1] + ".so.*"))
print(hits[-1] if hits else "")
PYEOF
}
[ "$DRV" != libcuda.so.1 ] && CUBLASLT=${CUBLASLT:-$DRV}
CUBLAS=${CUBLAS:-$(findlib libcublas)}; CUDNN=${CUDNN:-$(findlib libcudnn)}; CUBLASLT=${CUBLASLT:-$(findlib libcublasLt)}
[ -n "$CUBLAS" ] && P="$P -Dlatent.cublas.path=$CUBLAS"
[ -n "$CUBLASLT" ] && P="$P -Dlatent.cublaslt.path=$CUBLASLT"
[ -n "$CUDNN" ] && P="$P -Dlatent.cudnn.path=$CUDNN"
echo "vendor libraries: cuBLAS ${CUBLAS:-none found}, cuBLASLt ${CUBLASLT:-none found}, cuDNN ${CUDNN:-none found}" | tee $O/vendor.txt
rc=0
BUDGET=${BUDGET:-480}; T0=$SECONDS; STAGE_END=$((T0 + BUDGET)); : > $O/stages.txt
left() { echo $((BUDGET - (SECONDS - T0))); }
# tl N: a command's timeout, N seconds capped by what is left of its stage and of the whole run (at least 1)
tl() { local n=$1 s=$((STAGE_END - SECONDS)) g=$(left); [ $s -lt $n ] && n=$s; [ $g -lt $n ] && n=$g; [ $n -lt 1 ] && n=1; echo $n; }
# stage NAME BUDGET MIN: runs stage_NAME when STEPS names it (or is all) and at least MIN seconds of BUDGET are left
stage() {
  local name=$1 b=$2 min=$3 t=$SECONDS before=$rc
  [[ $STEPS == all || ,$STEPS, == *,$name,* ]] || return 0
  if [ $(left) -lt $min ]; then echo "$name: skipped: $(left) s of BUDGET=$BUDGET left, needs $min" | tee -a $O/stages.txt; return 0; fi
  [ $b -gt $(left) ] && b=$(left)
  STAGE_END=$((SECONDS + b)); rc=0
  echo "== stage $name (budget $b s; $(left) s of $BUDGET left)"
  stage_$name
  echo "$name: rc $rc in $((SECONDS - t)) s of its $b" | tee -a $O/stages.txt
  rc=$((before | rc)); STAGE_END=$((T0 + BUDGET))
  summary
}
stage_steps() {
  # Issue 18's step targets, both sides on this machine at the same shapes (the table in torch_steps.py): PyTorch eager,
  # every row in one process, then `latent train ... --device cuda --precision P` per row, most wanted first (vendor
  # libraries where found). One JSON line per side and row lands in $O/steps.jsonl as soon as it is measured; a row the
  # budget leaves out says so. Ours: the train command's steady rate (StepClock: second logged step to the last).
  local TS=bench/cuda/torch_steps.py DRY="" FM=$G/fmnist row m p a d r
  [ -n "$TINY" ] && { DRY=--dry-run; FM=/tmp/steps-fmnist-tiny; [ -d $G/fmnist ] && $PY $TS --tiny-data $G/fmnist $FM; }
  echo "-- PyTorch eager ($PY)"
  timeout $(tl ${TORCH_STEPS_TIMEOUT:-90}) $PY $TS $DRY --out $O/steps.jsonl --text $G/text.txt --budget-s ${TORCH_STEPS_BUDGET:-60} \
    > $O/torch_steps.log 2>&1; r=$?; grep -v "Warning\|warn(" $O/torch_steps.log | tail -20; echo "torch_steps rc=$r"; rc=$((rc|r))
  echo "-- Latent (train ... --device cuda)"
  for row in ${STEPS_ROWS:-gpt:fp32 gpt:bf16 gpt2s:bf16 gpt2s:fp32 dcgan:fp32 vae:fp32 realnvp:fp32 gpt:tf32 gpt2s:tf32 dcgan:bf16 vae:bf16 realnvp:bf16 dcgan:tf32 vae:tf32 realnvp:tf32}; do
    m=${row%%:*}; p=${row#*:}
    case $m in gpt*) d=$G/text.txt;; *) d=$FM;; esac
    if [ $((STAGE_END - SECONDS)) -lt 15 ] || [ $(left) -lt 15 ]; then
      echo "{\"side\": \"latent\", \"model\": \"$m\", \"precision\": \"$p\", \"error\": \"not run: the steps stage's budget was spent\"}" | tee -a $O/steps.jsonl
      continue
    fi
    if [ ! -e $d ]; then
      echo "{\"side\": \"latent\", \"model\": \"$m\", \"precision\": \"$p\", \"error\": \"not run: $d is not in the kit\"}" | tee -a $O/steps.jsonl
      rc=$((rc|1)); continue
    fi
    a=$($PY $TS --latent-args $m $DRY); rm -rf /tmp/steps-$m-$p
    timeout $(tl ${STEPS_ROW_TIMEOUT:-90}) $J -Xmx16g $P -cp $CP dev.latent.cli.Main train $a --data $d --out /tmp/steps-$m-$p --device cuda \
      --precision $p > /tmp/steps-$m-$p.out 2> /tmp/steps-$m-$p.err; r=$?
    cp /tmp/steps-$m-$p.err $O/steps-$m-$p.log
    $PY $TS --latent-record $m $p $r /tmp/steps-$m-$p.out /tmp/steps-$m-$p.err --checkpoint /tmp/steps-$m-$p/checkpoint.safetensors $DRY \
      | tee -a $O/steps.jsonl; rc=$((rc|r))
  done
  $PY bench/cuda/gpu_bench_table.py --steps $O/steps.jsonl
}
stage_hostsync() {
  # HostSyncTest alone, vendor libraries where found: the host synchronisations of each model's training step counted
  # on this GPU (issue 18: <= 1 a step; the test fails above its bounds), parsed into summary.json's host_syncs
  timeout $(tl 60) $J -Xmx8g $P -jar $G/lib/junit.jar execute --class-path $CP --select-class dev.latent.cuda.HostSyncTest \
    --details=tree --disable-banner --reports-dir /tmp/junit-reports-hostsync > $O/hostsync.log 2>&1; r=$?
  grep -h "host synchronisations\|tests successful\|tests failed" $O/hostsync.log; echo "hostsync rc=$r"; rc=$((rc|r))
}
stage_tests() {
  echo "== java tests (vendor libraries where found)"; SEL=${SEL:---select-package dev.latent.cuda --select-class dev.latent.cli.CudaCliTest --select-class dev.latent.cli.CudaSampleCliTest}
  timeout $(tl 240) $J -Xmx16g $P -jar $G/lib/junit.jar execute --class-path $CP $SEL --exclude-classname '.*CudaUnavailableTest' \
    --details=tree --disable-banner --reports-dir /tmp/junit-reports > $O/tests.log 2>&1; r=$?; tail -60 $O/tests.log; ok=$(grep -o "\[ *[0-9]* tests successful" $O/tests.log | grep -o "[0-9]*"); [ "${ok:-0}" -gt 0 ] || r=9; echo "tests rc=$r ($ok successful)"; rc=$((rc|r))
  grep -h "host synchronisations\|cuBLAS vs\|CuBlasTest:\|CuBlasLtTest:\|CuDnnTest:\|CuDnnFindTest:\|sdpa\|worst difference / bound\|DeviceKvDecoderTest:" $O/tests.log | tee $O/syncs.txt
  echo "== java tests with LATENT_CUDA_VENDOR=0 (our kernels only): the model steps and the sync count"
  LATENT_CUDA_VENDOR=0 timeout $(tl 120) $J -Xmx16g $P -jar $G/lib/junit.jar execute --class-path $CP --select-class dev.latent.cuda.CudaGptTest \
    --select-class dev.latent.cuda.CudaVaeTest --select-class dev.latent.cuda.CudaGanTest --select-class dev.latent.cuda.HostSyncTest \
    --details=tree --disable-banner --reports-dir /tmp/junit-reports-ours > $O/tests-ours.log 2>&1; r=$?; tail -15 $O/tests-ours.log; echo "tests (ours) rc=$r"; rc=$((rc|r))
}
stage_vendorbench() {
  echo "== ours vs cuBLAS / cuDNN through our binding (VendorBench)"
  timeout $(tl 200) $J -Xmx16g $P -cp $CP dev.latent.cuda.VendorBench $O/vendor_bench.json $TINY > $O/vendor_bench.log 2>&1; r=$?; cat $O/vendor_bench.log; echo "vendorbench rc=$r"; rc=$((rc|r))
}
stage_bench() {
  echo "== bench"; EMU=""; [ "$DRV" != libcuda.so.1 ] && EMU="--emulated $DRV"
  timeout $(tl 240) $PY bench/cuda/gpu_bench.py $EMU --fatbin $G/native/latent_kernels.fatbin --out $O/gpu_bench.json > $O/bench.log 2>&1; r=$?; grep -v NNPACK $O/bench.log; echo "bench rc=$r"; rc=$((rc|r))
}
stage_graph() {
  # the GPT training step (forward, backward, clipped AdamW) timed plainly and replayed from a CUDA graph, same process,
  # same data, for two model sizes; and whether the graph's results equal the plain step's (graph_bench.json)
  echo "== CUDA graphs (GraphBench)"
  timeout $(tl 200) $J -Xmx16g $P -cp $CP dev.latent.cuda.GraphBench $O/graph_bench.json $TINY > $O/graph_bench.log 2>&1; r=$?; cat $O/graph_bench.log; echo "graphbench rc=$r"; rc=$((rc|r))
}
# CUDA graphs for a non-GPT family (h-graphs2): train dcgan and train realnvp on the device, plain and with --cuda-graph
# (each step after two warm-up steps replayed from a graph), same data, same process settings; images_per_s of each run
# lands in familygraph-<model>-<run>.jsonl, and whether the graph's losses equal the plain run's in familygraph.txt.
# Fashion-MNIST when the kit has it, else 2048 random 28 x 28 images (IDX files written here).
stage_familygraph() {
  echo "== CUDA graphs for dcgan and realnvp (train --cuda-graph vs plain)"
  local D=$G/fmnist; : > $O/familygraph.txt
  if [ ! -d $D ]; then D=/tmp/familygraph-data; mkdir -p $D; $PY - $D <<'PYEOF'
import os, struct, sys
d = sys.argv[1]; n = 2048
for stem in ("train", "t10k"):
    with open(os.path.join(d, stem + "-images-idx3-ubyte"), "wb") as f: f.write(struct.pack(">IIII", 0x803, n, 28, 28) + os.urandom(n * 784))
PYEOF
  fi
  for model in dcgan realnvp; do
    A="--iters ${FG_ITERS:-200} --log-interval 20"; [ $model = realnvp ] && A="--max-steps ${FG_ITERS:-200} --test-limit 500"
    # the dry run (emulated driver): tiny models, so both runs finish inside the stage's budget
    if [ -n "$TINY" ]; then
      A="--iters 6 --log-interval 2 --batch 4 --nz 8 --ngf 4 --ndf 4"
      [ $model = realnvp ] && A="--max-steps 6 --test-limit 8 --batch 4 --hidden 4 --couplings 2"
    fi
    for run in plain graph; do
      X=""; [ $run = graph ] && X=--cuda-graph; rm -rf /tmp/fg-$model-$run
      timeout $(tl 150) $J -Xmx8g $P -cp $CP dev.latent.cli.Main train $model --data $D --out /tmp/fg-$model-$run --device cuda $A $X \
        > /tmp/fg-$model-$run.log 2>&1; r=$?; tail -2 /tmp/fg-$model-$run.log
      cp /tmp/fg-$model-$run/metrics.jsonl $O/familygraph-$model-$run.jsonl 2>/dev/null
      echo "familygraph $model $run rc=$r" | tee -a $O/familygraph.txt; rc=$((rc|r))
    done
    $PY - /tmp/fg-$model-plain/metrics.jsonl /tmp/fg-$model-graph/metrics.jsonl $model <<'PYEOF' | tee -a $O/familygraph.txt
import json, sys
def rows(f):
    try: return [json.loads(l) for l in open(f) if l.strip()]
    except Exception: return []
a, b, m = rows(sys.argv[1]), rows(sys.argv[2]), sys.argv[3]
skip = {"elapsed_s", "images_per_s", "train_images_per_s", "seconds", "epoch_seconds", "steady_seconds", "steady_steps_per_s", "steady_images_per_s", "steady_tokens_per_s"}
same = len(a) > 0 and len(a) == len(b) and all({k: v for k, v in x.items() if k not in skip} == {k: v for k, v in y.items() if k not in skip} for x, y in zip(a, b))
ips = lambda r: [x.get("images_per_s", x.get("train_images_per_s")) for x in r if x.get("images_per_s", x.get("train_images_per_s")) is not None]
print(f"familygraph {m}: values equal without and with --cuda-graph: {same}; images/s plain {ips(a)[-1:] }, graph {ips(b)[-1:]}")
PYEOF
  done
}
stage_gpt() {
  echo "== gpt"; GS=${GPT_STEPS:-60}
  for cfg in small big; do
    A="$GPT_ARGS"; S=$GS; [ $cfg = big ] && { A="--layers 6 --heads 6 --dim 384 --context 256 --batch 32 $GPT_ARGS"; S=$((GS/3)); }
    # cuda: vendor libraries where found; cuda-graph: the same, each step after two warm-up steps replayed from a CUDA
    # graph (--cuda-graph: compare its tokens_per_s with cuda's); cuda-ours: LATENT_CUDA_VENDOR=0
    for run in cuda cuda-graph cuda-ours cpu; do
      dev=${run%-ours}; dev=${dev%-graph}; V=1; [ $run = cuda-ours ] && V=0; X=""; [ $run = cuda-graph ] && X=--cuda-graph
      LATENT_CUDA_VENDOR=$V timeout $(tl 150) $J -Xmx8g $P -cp $CP dev.latent.cli.Main train gpt --data $G/text.txt --out /tmp/gpt-$cfg-$run --device $dev --steps $S \
        --eval-interval $S --eval-batches 5 --log-interval 5 --checkpoint-interval 0 --sample-tokens 40 $X $A > /tmp/gpt-$cfg-$run.log 2>&1; r=$?; cat /tmp/gpt-$cfg-$run.log >> $O/gpt.log
      grep -m3 "device\|data:" /tmp/gpt-$cfg-$run.log; tail -4 /tmp/gpt-$cfg-$run.log; tail -2 /tmp/gpt-$cfg-$run/metrics.jsonl 2>/dev/null
      cp /tmp/gpt-$cfg-$run/metrics.jsonl $O/gpt-$cfg-$run.jsonl 2>/dev/null
      echo "gpt $cfg $run rc=$r"; rc=$((rc|r))
    done
  done
}
stage_precision() {
  # The GPT training step on the device at each --precision (fp32 / tf32 / bf16; issue 18), vendor libraries where found
  # and our kernels alone: tokens_per_s and the loss of each run land in gpt-prec-<cfg>-<precision>[-ours].jsonl.
  echo "== gpt --precision"; PS=${PREC_STEPS:-30}
  for cfg in small big; do
    A="$GPT_ARGS"; S=$PS; [ $cfg = big ] && { A="--layers 6 --heads 6 --dim 384 --context 256 --batch 32 $GPT_ARGS"; S=$((PS/3)); }
    for prec in fp32 tf32 bf16; do
      for V in 1 0; do
        run=$prec; [ $V = 0 ] && run=$prec-ours
        LATENT_CUDA_VENDOR=$V timeout $(tl 150) $J -Xmx8g $P -cp $CP dev.latent.cli.Main train gpt --data $G/text.txt --out /tmp/gpt-prec-$cfg-$run \
          --device cuda --precision $prec --steps $S --eval-interval $S --eval-batches 5 --log-interval 5 --checkpoint-interval 0 \
          --sample-tokens 40 $A > /tmp/gpt-prec-$cfg-$run.log 2>&1; r=$?; cat /tmp/gpt-prec-$cfg-$run.log >> $O/gpt-precision.log
        tail -2 /tmp/gpt-prec-$cfg-$run/metrics.jsonl 2>/dev/null
        cp /tmp/gpt-prec-$cfg-$run/metrics.jsonl $O/gpt-prec-$cfg-$run.jsonl 2>/dev/null
        echo "gpt --precision $prec $cfg $([ $V = 0 ] && echo 'our kernels' || echo 'vendor where found') rc=$r"; rc=$((rc|r))
      done
    done
  done
}
stage_decode() {
  # GPT decoding, tokens/s: sample gpt on the device (DeviceKvDecoder: KV cache in device memory, one host sync a token)
  # and on the CPU (the packed KvDecoder) from the big config's checkpoint (trained by the gpt step, else briefly here),
  # greedy and sampled. The rate is what sample gpt prints: "N tokens in S s (R tokens/s)", prompt included in S.
  echo "== decode"; CK=/tmp/gpt-big-cuda; DT=${DECODE_TOKENS:-200}
  if [ ! -f $CK/checkpoint.safetensors ]; then
    timeout $(tl 150) $J -Xmx8g $P -cp $CP dev.latent.cli.Main train gpt --data $G/text.txt --out $CK --device cuda --steps 20 --eval-interval 20 \
      --eval-batches 1 --log-interval 10 --checkpoint-interval 0 --sample-tokens 0 --layers 6 --heads 6 --dim 384 --context 256 --batch 32 > /tmp/decode-train.log 2>&1
  fi
  : > $O/decode.txt
  for dev in cuda cpu; do
    for temp in 0 0.8; do
      timeout $(tl 120) $J -Xmx8g $P -cp $CP dev.latent.cli.Main sample gpt --checkpoint $CK --tokens $DT --temperature $temp --prompt "The " \
        --device $dev > /tmp/decode-$dev-$temp.out 2> /tmp/decode-$dev-$temp.err; r=$?
      echo "decode $dev temperature $temp: $(grep -h 'tokens/s' /tmp/decode-$dev-$temp.err) rc=$r" | tee -a $O/decode.txt; rc=$((rc|r))
    done
  done
  cmp -s /tmp/decode-cuda-0.out /tmp/decode-cpu-0.out && echo "decode: greedy text on the device equals the CPU's" | tee -a $O/decode.txt \
    || echo "decode: greedy text differs between the device and the CPU (near ties can part them; see /tmp/decode-*.out)" | tee -a $O/decode.txt
}
stage_models() {
  [ -d $G/fmnist ] || { echo "models: no Fashion-MNIST in the kit ($G/fmnist)" | tee -a $O/stages.txt; return 0; }
  echo "== models on Fashion-MNIST (cuda, then cpu on this machine's cores)"
  run() { local name=$1; shift
    for dev in cuda cpu; do
      timeout $(tl ${MODEL_TIMEOUT:-150}) $J -Xmx16g $P -cp $CP dev.latent.cli.Main "$@" --data $G/fmnist --out /tmp/$name-$dev --device $dev \
        > /tmp/$name-$dev.log 2>&1; r=$?; cat /tmp/$name-$dev.log >> $O/models.log
      echo "-- $name $dev rc=$r"; grep -m2 "device\|CUDA" /tmp/$name-$dev.log; tail -3 /tmp/$name-$dev.log; rc=$((rc|r))
    done; }
  run vae train vae --epochs 1 --iwae-k 20 --iwae-n 200 ${VAE_ARGS}
  run dcgan train dcgan --iters ${DCGAN_ITERS:-300} --log-interval 100 ${DCGAN_ARGS}
  run realnvp train realnvp ${REALNVP_ARGS:---max-steps 200 --test-limit 2000}
}
stage_pixelcnn() {
  # PixelCNN on the device (h-pixcuda): a short train pixelcnn --device cuda (default architecture), then sample pixelcnn
  # (64 images, DevicePixelCnnSampler: no host read per pixel) and eval pixelcnn on cuda and on this machine's CPU; the
  # rates are what the commands print ("N images x 784 pixels in S s", test bits/dim). Last: it needs Fashion-MNIST.
  [ -d $G/fmnist ] || { echo "pixelcnn: no Fashion-MNIST in the kit ($G/fmnist)" | tee -a $O/stages.txt; return 0; }
  echo "== pixelcnn"; CK=/tmp/pixelcnn-cuda; : > $O/pixelcnn.txt; rm -rf $CK
  # the dry run (emulated driver): a tiny model and a few pixels; on a GPU the default architecture and whole grids
  if [ -n "$TINY" ]; then TA="--steps 2 --limit 8 --test-limit 4 --channels 4 --layers 2 --head 8"; SA="--n 2 --pixels 30"; EA="--limit 4"
  else TA="--steps ${PCNN_STEPS:-50} --test-limit 500"; SA="--n 64"; EA="--limit 1000"; fi
  timeout $(tl 90) $J -Xmx8g $P -cp $CP dev.latent.cli.Main train pixelcnn --data $G/fmnist --out $CK --device cuda $TA \
    --samples 0 --quiet > /tmp/pixelcnn-train.log 2>&1; r=$?
  echo "pixelcnn train rc=$r: $(tail -1 /tmp/pixelcnn-train.log)" | tee -a $O/pixelcnn.txt; rc=$((rc|r))
  # cuda: the pixel step as a CUDA graph (the default, h-pixgraph); cuda-nograph: LATENT_PIXELCNN_CUDA_GRAPH=0 (A/B; the
  # same bytes, compared below)
  for dev in cuda cuda-nograph cpu; do
    rm -f /tmp/pixelcnn-$dev.png; gr=1; [ $dev = cuda-nograph ] && gr=0
    LATENT_PIXELCNN_CUDA_GRAPH=$gr timeout $(tl 120) $J -Xmx8g $P -cp $CP dev.latent.cli.Main sample pixelcnn --checkpoint $CK \
      --out /tmp/pixelcnn-$dev.png $SA --seed 7 --device ${dev%-nograph} > /tmp/pixelcnn-sample-$dev.out 2> /tmp/pixelcnn-sample-$dev.err; r=$?
    echo "pixelcnn sample $dev rc=$r: $(cat /tmp/pixelcnn-sample-$dev.out)" | tee -a $O/pixelcnn.txt; rc=$((rc|r))
    [ $dev = cuda-nograph ] && { s=$($PY - /tmp/pixelcnn-cuda.png /tmp/pixelcnn-cuda-nograph.png 2>&1 <<'PYEOF'
import struct, sys, zlib
def pixels(f):   # the PNG's image data (the provenance text differs between runs)
    d = open(f, "rb").read(); i = 8; out = b""
    while i < len(d):
        n = struct.unpack(">I", d[i:i + 4])[0]
        if d[i + 4:i + 8] == b"IDAT": out += d[i + 8:i + 8 + n]
        i += 12 + n
    return zlib.decompress(out)
print("same pixels" if pixels(sys.argv[1]) == pixels(sys.argv[2]) else "DIFFERENT pixels")
PYEOF
); echo "pixelcnn sample cuda graph vs no graph: $s" | tee -a $O/pixelcnn.txt; [[ $s == "same pixels" ]] || rc=$((rc|1)); continue; }
    timeout $(tl 60) $J -Xmx8g $P -cp $CP dev.latent.cli.Main eval pixelcnn --checkpoint $CK $EA --device $dev \
      > /tmp/pixelcnn-eval-$dev.out 2>&1; r=$?
    echo "pixelcnn eval $dev rc=$r: $(grep '^{' /tmp/pixelcnn-eval-$dev.out)" | tee -a $O/pixelcnn.txt; rc=$((rc|r))
  done
  # (the bytes against the CPU's: CudaPixelCnnTest and CudaSampleCliTest in the tests stage)
}
# One JSON for BENCHMARKS.md: the machine, the libraries, the test outcome, both benches, the GPT runs' last metrics, the
# training steps of both sides with their ratios, the host synchronisation counts, which stages ran; after every stage.
summary() {
$PY - $O <<'PYEOF' || echo "summary.json: not written"
import glob, json, os, re, sys
o = sys.argv[1]
def text(f):
    p = os.path.join(o, f)
    return open(p).read() if os.path.exists(p) else ""
def js(f):
    try: return json.load(open(os.path.join(o, f)))
    except Exception: return None
def last(f):
    lines = [l for l in text(f).splitlines() if l.strip().startswith("{")]
    return json.loads(lines[-1]) if lines else None
def host_syncs():
    # "WHAT: N host synchronisations ..." lines of HostSyncTest (its own stage, else the tests stage's grep)
    log = text("hostsync.log") or text("syncs.txt")
    lines = [l.strip() for l in log.splitlines() if "host synchronisations" in l]
    counts = {}
    for l in lines:
        m = re.match(r"^(?:[^A-Za-z]*)(.+?): (\d+) host synchronisations", l)
        if m: counts[m.group(1)] = int(m.group(2))
    okh = re.findall(r"\[ *(\d+) tests successful", text("hostsync.log")); badh = re.findall(r"\[ *(\d+) tests failed", text("hostsync.log"))
    per_step = {k: v for k, v in counts.items() if re.fullmatch(r".* step( total)?", k)}   # the tests' summary lines
    return {"per_step": per_step, "budget_per_step": 1, "within_budget": all(v <= 1 for v in per_step.values()) if per_step else None,
            "counts": counts, "test_successful": int(okh[0]) if okh else None,
            "test_failed": int(badh[0]) if badh else None, "lines": lines}
def steps():
    rows = [json.loads(l) for l in text("steps.jsonl").splitlines() if l.strip().startswith("{")]
    pairs = {}
    for r in rows:   # the last line of a side wins (a rerun appends)
        pairs.setdefault(r["model"] + " " + r["precision"], {})[r["side"]] = r
    for k, v in pairs.items():
        a, b = v.get("latent", {}), v.get("pytorch", {})
        if a.get("params") and b.get("params"):   # the same model on both sides: the same trained parameter count
            v["same_params"] = a["params"] == b["params"]
        if a.get("items_per_s") and b.get("items_per_s"):
            v["ratio"] = a["items_per_s"] / b["items_per_s"]
            v["target_met"] = v["ratio"] >= 1.0
    return pairs
ok = re.findall(r"\[ *(\d+) tests successful", text("tests.log")); bad = re.findall(r"\[ *(\d+) tests failed", text("tests.log"))
s = {"gpu": text("gpu.txt").strip(), "vendor": text("vendor.txt").strip(), "dry_run": os.environ.get("LATENT_DRY_RUN") == "1",
     "tests": {"successful": int(ok[0]) if ok else 0, "failed": int(bad[0]) if bad else None},
     "host_syncs": host_syncs(), "decode": text("decode.txt").splitlines(), "vendor_bench": js("vendor_bench.json"), "gpu_bench": js("gpu_bench.json"),
     "graph_bench": js("graph_bench.json"), "steps": steps(), "family_graph": text("familygraph.txt").splitlines(), "pixelcnn": text("pixelcnn.txt").splitlines(),
     "stages": text("stages.txt").splitlines(),
     "gpt": {os.path.basename(f)[4:-6]: last(os.path.basename(f)) for f in sorted(glob.glob(os.path.join(o, "gpt-*.jsonl")))
             if not os.path.basename(f).startswith("gpt-prec-")},
     "gpt_precision": {os.path.basename(f)[9:-6]: last(os.path.basename(f)) for f in sorted(glob.glob(os.path.join(o, "gpt-prec-*.jsonl")))}}
json.dump(s, open(os.path.join(o, "summary.json"), "w"), indent=1)
print("summary.json written")
PYEOF
}
# The stages, most wanted first (issue 18's GPU-only targets: the steps beside PyTorch, the host synchronisations, the
# tests on the real driver, attention bf16 vs cuDNN's SDPA in the benches): stage NAME BUDGET_S MIN_S
stage steps 210 60
stage hostsync 40 20
stage tests 100 40
stage bench 60 30
stage vendorbench 40 20
stage graph 30 20
stage familygraph ${FG_BUDGET:-60} 40
stage precision 60 40
stage gpt 60 40
stage decode 40 30
stage models 60 40
stage pixelcnn 60 40
summary
exit $rc
