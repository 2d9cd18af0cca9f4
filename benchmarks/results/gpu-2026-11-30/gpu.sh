#!/bin/bash
# Issue #8 goal 7 on the lent GPU, in one call: model table fp32/tf32/bf16, score and train end to end,
# precision speed + NLL, compiled model table. Each section bounded by the time left; JSON per section in $OUT.
# QUICK=1: tiny sizes on whatever device (a local dry run of the flags).
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
BUDGET=${BUDGET:-520}
T0=$(date +%s)
exec > >(tee -a "$OUT/log.txt") 2>&1
if [ -d .whl ] && [ "${QUICK:-0}" != 1 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
PY=${PY:-python3}
el() { echo "== $(( $(date +%s) - T0 )) s: $*"; }
left() { local l=$(( BUDGET - ($(date +%s) - T0) )); [ "$1" -lt "$l" ] && l=$1; [ "$l" -lt 5 ] && l=5; echo "$l"; }
DEV=cuda; Q=(); QM=(--steps 30); QS=(); QT=(--steps 20); QP=()
if [ "${QUICK:-0}" = 1 ]; then
  DEV=cpu; QM=(--dims 8 --batches 64 --steps 1 --repeats 1); QS=(--frames 10000 --scale 2 --hidden 16 --blocks 2 --repeats 1)
  QT=(--frames 20000 --batch 1000 --repeats 1); QP=(--epochs 1 --seeds 0 --num-sentences 24 --train-args "--model.hidden 16 --model.num-blocks 2")
fi
el start
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.total --format=csv 2>&1 | head -3
nproc
$PY -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name()); import flowaccent, nflows, kaldiio, kaldi_native_fbank, espeakng_loader; print('imports ok')"
el model
for p in fp32 tf32 bf16; do
  [ "$DEV" = cpu ] && [ "$p" = tf32 ] && continue
  timeout "$(left 100)" $PY benchmarks/bench_model.py --device $DEV --precision $p --no-compile "${QM[@]}" \
    --json "$OUT/model_$p.json" || echo "model $p failed: $?"
done
el score
timeout "$(left 150)" $PY benchmarks/bench_score.py "${QS[@]}" --json "$OUT/score.json" || echo "score failed: $?"
el train
timeout "$(left 120)" $PY benchmarks/bench_train.py --no-compile --repeats 2 "${QT[@]}" --json "$OUT/train.json" \
  || echo "train failed: $?"
el precision
timeout "$(left 330)" $PY benchmarks/bench_precision.py "${QP[@]}" --json "$OUT/precision.json" \
  || echo "precision failed: $?"
el compiled
timeout "$(left 200)" $PY benchmarks/bench_model.py --device $DEV --precision fp32 "${QM[@]}" \
  --json "$OUT/model_fp32_compiled.json" || echo "compiled failed: $?"
el end
