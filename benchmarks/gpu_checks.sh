#!/bin/bash
# What issue #8 still needs from a GPU, in one call of about 9 minutes (docs/performance.md, section GPU,
# "Not done"): training end to end with the faster loading and the burst-deep prefetch queue; three
# epochs of a demo-sized corpus at the default batch (the queue across epochs: what the later epochs
# wait for); the validation pass joined into batches against one forward per utterance; scoring end to
# end at the default batch and at 65536 frames per forward; then training end to end with CUDA graphs
# (train.compile_mode reduce-overhead). Each section is bounded by the time left of BUDGET seconds;
# one JSON per section and log.txt go to $OUT.
#
# On the device machine (its own torch; flowaccent's dependencies carried as wheels in .whl/):
#   run: bash benchmarks/gpu_checks.sh   with carry [".whl"]
# QUICK=1: tiny sizes on the CPU, to check the script here (numbers meaningless).
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
BUDGET=${BUDGET:-540}
T0=$(date +%s)
exec > >(tee -a "$OUT/log.txt") 2>&1
PY=${PY:-python3}
if [ -d .whl ] && [ "${QUICK:-0}" != 1 ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
el() { echo "== $(( $(date +%s) - T0 )) s: $*"; }
left() { local l=$(( BUDGET - ($(date +%s) - T0) )); [ "$1" -lt "$l" ] && l=$1; [ "$l" -lt 5 ] && l=5; echo "$l"; }
TRAIN=(--repeats 2); EPOCHS=(--frames 240000 --batch 4096 --epochs 3 --repeats 2); SCORE=(--repeats 2)
GRAPHS=(--repeats 1 --steps 10); VALID=(--repeats 5)
if [ "${QUICK:-0}" = 1 ]; then
  TRAIN=(--frames 20000 --batch 1000 --repeats 1 --steps 1); GRAPHS=("${TRAIN[@]}")
  EPOCHS=(--frames 20000 --batch 1000 --epochs 3 --repeats 1 --steps 1); VALID=(--utts 6 --utt-frames 50 --repeats 1)
  SCORE=(--frames 10000 --scale 2 --hidden 16 --blocks 2 --repeats 1)
fi
el start
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | head -3
nproc
$PY -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.version.cuda,
torch.cuda.is_available() and torch.cuda.get_device_name()); import flowaccent, nflows, kaldiio; print('imports ok')"
el train, eager
timeout "$(left 110)" $PY benchmarks/bench_train.py --no-compile "${TRAIN[@]}" --json "$OUT/train.json" \
  || echo "train failed: $?"
el train, eager, 3 epochs of 240k frames at batch 4096
timeout "$(left 60)" $PY benchmarks/bench_train.py --no-compile "${EPOCHS[@]}" --json "$OUT/train_epochs.json" \
  || echo "train epochs failed: $?"
el validation, joined batches against one forward per utterance
timeout "$(left 40)" $PY benchmarks/bench_validation.py "${VALID[@]}" --json "$OUT/validation.json" \
  || echo "validation failed: $?"
el score, default batch
timeout "$(left 90)" $PY benchmarks/bench_score.py "${SCORE[@]}" --json "$OUT/score.json" || echo "score failed: $?"
el score, 65536 frames per forward
timeout "$(left 90)" $PY benchmarks/bench_score.py "${SCORE[@]}" --batch-frames 65536 --json "$OUT/score_65536.json" \
  || echo "score 65536 failed: $?"
el train, CUDA graphs
timeout "$(left 200)" $PY benchmarks/bench_train.py --compile-mode reduce-overhead "${GRAPHS[@]}" \
  --json "$OUT/train_reduce_overhead.json" 2>&1 | grep -v "Extern Choice" || echo "train reduce-overhead failed"
el end
