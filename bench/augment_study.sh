#!/usr/bin/env bash
# The augmentation study of issue 21: does adding images of the class-conditional models to a small labelled subset of
# Fashion-MNIST help the classifier? Per seed: a subset of PER_CLASS train images per class (seeded pick), a cVAE and
# a cDCGAN trained on that subset only (no other image is seen), GEN_PER_CLASS generated images per class from each,
# then `train classifier` for CLS_STEPS steps (batch 64, the same step count for every arm) on
#   real      the subset alone
#   real+cvae the subset and the cVAE's images (labelled with the class they were asked for)
#   real+cgan the subset and the cDCGAN's images
# and its accuracy on the full 10,000-image test split; also how often the real-only classifier assigns each model's
# generated images to the class they were asked for (bench/AugmentAgreement.java). Prints and writes OUT/results.json
# and OUT/results.md.
#
#   bench/augment_study.sh [OUT]        (default OUT: /tmp/latent-augment)
# Settings by environment: SEEDS ("1 2 3"), PER_CLASS (100), GEN_PER_CLASS (100), VAE_EPOCHS (60), VAE_LATENT (16),
# GAN_ITERS (1500), GAN_WIDTH (32, --ngf and --ndf), CLS_STEPS (600), DATA (/usr/share/datasets/fashion-mnist, or
# $LATENT_FASHION_MNIST), RUN (a prefix for every training command, e.g. "flock /tmp/latent-heavy.lock" so each
# training run takes a shared lock and releases it between runs; the sampling calls, a second each, run without it).
# A run already done in OUT (its JSON summary present) is kept, so an interrupted study continues where it stopped.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-/tmp/latent-augment}"
SEEDS="${SEEDS:-1 2 3}"
PER_CLASS="${PER_CLASS:-100}"; GEN_PER_CLASS="${GEN_PER_CLASS:-100}"
VAE_EPOCHS="${VAE_EPOCHS:-60}"; VAE_LATENT="${VAE_LATENT:-16}"
GAN_ITERS="${GAN_ITERS:-1500}"; GAN_WIDTH="${GAN_WIDTH:-32}"
CLS_STEPS="${CLS_STEPS:-600}"
DATA="${DATA:-${LATENT_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}}"
RUN="${RUN:-}"
LATENT="$ROOT/bin/latent"
PY="$ROOT/bench/augment_idx.py"
mkdir -p "$OUT"
log() { echo "[augment $(date -u +%H:%M:%S)] $*" >&2; }
# last JSON line of a command's stdout -> the value of key $1
field() { python3 -c 'import json,sys; print(json.loads([l for l in sys.stdin if l.startswith("{")][-1])[sys.argv[1]])' "$1"; }

echo -n > "$OUT/runs.tsv"; echo -n > "$OUT/agreement.tsv"
"$LATENT" --help > /dev/null   # builds the jars when they are missing or stale
. "$ROOT/ci/find-jdk.sh"; latent_find_jdk
CP="$ROOT/java/target/latent-0.2.0.jar:$ROOT/java/target/latent-0.2.0-linux-x86_64.jar"
for s in $SEEDS; do
  W="$OUT/seed-$s"
  mkdir -p "$W"
  python3 "$PY" subset "$DATA" "$PER_CLASS" "$s" "$W/real"            # classifier arm: the full test split
  python3 "$PY" subset "$DATA" "$PER_CLASS" "$s" "$W/gen-data" 1000   # generators: their per-epoch test metrics on 1,000
  if [ ! -s "$W/cvae.json" ]; then
    log "seed $s: cVAE ($VAE_EPOCHS epochs, latent $VAE_LATENT)"
    $RUN "$LATENT" train vae --conditional --data "$W/gen-data" --out "$W/cvae" --epochs "$VAE_EPOCHS" --batch 64 \
        --latent "$VAE_LATENT" --iwae-n 0 --seed "$s" --quiet --overwrite > "$W/cvae.json.tmp"
    mv "$W/cvae.json.tmp" "$W/cvae.json"
  fi
  if [ ! -s "$W/cgan.json" ]; then
    log "seed $s: cDCGAN ($GAN_ITERS iterations, width $GAN_WIDTH)"
    $RUN "$LATENT" train dcgan --conditional --data "$W/gen-data" --out "$W/cgan" --iters "$GAN_ITERS" --batch 64 \
        --ngf "$GAN_WIDTH" --ndf "$GAN_WIDTH" --seed "$s" --quiet --overwrite > "$W/cgan.json.tmp"
    mv "$W/cgan.json.tmp" "$W/cgan.json"
  fi
  log "seed $s: sampling $GEN_PER_CLASS images per class from each"
  vae_parts=(); gan_parts=()
  for k in 0 1 2 3 4 5 6 7 8 9; do
    vae_parts+=("$W/cvae-$k-idx3-ubyte:$k"); gan_parts+=("$W/cgan-$k-idx3-ubyte:$k")
    [ -s "$W/cgan-$k-idx3-ubyte" ] && [ -s "$W/cvae-$k-idx3-ubyte" ] && continue
    "$LATENT" sample vae --checkpoint "$W/cvae" --class "$k" --n "$GEN_PER_CLASS" --seed $((1000 * s + k)) \
        --out "$W/cvae-$k-idx3-ubyte" > /dev/null
    "$LATENT" sample dcgan --checkpoint "$W/cgan" --class "$k" --n "$GEN_PER_CLASS" --seed $((1000 * s + k)) \
        --out "$W/cgan-$k-idx3-ubyte" > /dev/null
  done
  "$LATENT" sample vae --checkpoint "$W/cvae" --analogy --n 8 --seed "$s" --out "$W/cvae-analogy.png" > /dev/null
  "$LATENT" sample dcgan --checkpoint "$W/cgan" --n 100 --seed "$s" --out "$W/cgan-by-class.png" > /dev/null
  python3 "$PY" merge "$W/real+cvae" "$W/real" "$W/real" "${vae_parts[@]}"
  python3 "$PY" merge "$W/real+cgan" "$W/real" "$W/real" "${gan_parts[@]}"
  for arm in real real+cvae real+cgan; do
    if [ ! -s "$W/cls-$arm.json" ]; then
      log "seed $s: classifier on $arm ($CLS_STEPS steps)"
      $RUN "$LATENT" train classifier --data "$W/$arm" --out "$W/cls-$arm" --steps "$CLS_STEPS" --batch 64 --seed "$s" \
          --quiet --overwrite > "$W/cls-$arm.json.tmp"
      mv "$W/cls-$arm.json.tmp" "$W/cls-$arm.json"
    fi
    acc=$(field test_accuracy < "$W/cls-$arm.json")
    printf '%s\t%s\t%s\n' "$s" "$arm" "$acc" | tee -a "$OUT/runs.tsv"
  done
  for m in cvae cgan; do   # the real-only classifier's verdict on the generated images: do they show their class?
    agr=$("$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED -cp "$CP" "$ROOT/bench/AugmentAgreement.java" \
        "$W/cls-real" "$W/$m" 2>/dev/null | field agreement)
    printf '%s\t%s\t%s\n' "$s" "$m" "$agr" | tee -a "$OUT/agreement.tsv"
  done
done

python3 - "$OUT" "$PER_CLASS" "$GEN_PER_CLASS" "$CLS_STEPS" <<'PYEOF'
import json, statistics, sys
out, per, gen, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = [l.split("\t") for l in open(f"{out}/runs.tsv").read().splitlines() if l]
arms = {}
for s, arm, acc in rows:
    arms.setdefault(arm, []).append((int(s), float(acc)))
res = {}
md = [f"| arm | train images | test accuracy per seed | mean | std (n-1) | min-max |", "|---|---|---|---|---|---|"]
base = statistics.mean(a for _, a in arms.get("real", [(0, float("nan"))]))
for arm, v in arms.items():
    accs = [a for _, a in v]
    sd = statistics.stdev(accs) if len(accs) > 1 else float("nan")
    n = 10 * per + (10 * gen if arm != "real" else 0)
    res[arm] = {"seeds": [s for s, _ in v], "test_accuracy": accs, "mean": statistics.mean(accs), "std": sd, "train_images": n}
    md.append(f"| {arm} | {n} | {', '.join(f'{a:.4f}' for a in accs)} | {statistics.mean(accs):.4f} | {sd:.4f} | "
              f"{min(accs):.4f}-{max(accs):.4f} |")
agr = {}
for l in open(f"{out}/agreement.tsv").read().splitlines():
    if l:
        s, m, a = l.split("\t")
        agr.setdefault(m, []).append(float(a))
md += ["", "| generated by | agreement with the asked class per seed (real-only classifier) | mean |", "|---|---|---|"]
for m, v in agr.items():
    res["agreement_" + m] = {"per_seed": v, "mean": statistics.mean(v)}
    md.append(f"| {m} | {', '.join(f'{a:.3f}' for a in v)} | {statistics.mean(v):.3f} |")
json.dump(res, open(f"{out}/results.json", "w"), indent=1)
open(f"{out}/results.md", "w").write("\n".join(md) + "\n")
print("\n".join(md))
PYEOF
