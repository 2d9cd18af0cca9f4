#!/bin/bash
# shellcheck disable=SC2086  # $PY unquoted on purpose: PY='python3 -X dev' is two words
# What issue #8 still needs from a GPU, in one call of at most 9 minutes (docs/performance.md,
# section GPU, "Second lease"). First what goal 7 has never measured: scoring in tf32 and bf16 (the
# first lease's precision section was cut after 4 of its 6 trainings, before its scoring table), with
# one seed's three trainings side by side (bench_precision.py --seeds 1: fp32, then test_native scored
# in each precision, then tf32 and bf16; ~4 min at the first lease's speed). Then the open question:
# the eager training step is bound by the host launching it, and `flowaccent train` reaches 0.61-0.67
# of the model-only rate; gpu_launch.py times the step bare, with what the trainer adds (the logged
# means, gradient clipping), under train.deterministic, and that without filling new tensors. Then
# where scoring's 4-6 s of start-up go (bench_startup.py, printed to log.txt only). Then the
# measurements of the second lease again, side by side with another checkout when .old/ holds one
# (`git archive REV flowaccent | tar -x -C .old`): where the host still waits (gpu_syncs.py), training
# end to end (1 epoch of 1M frames at batch 10000; 3 epochs of 240k frames at batch 4096), scoring at
# 65536 and 8000 frames per forward, the validation pass. The GPU-only unit tests run first. Each
# section is bounded by the time left of BUDGET seconds; $OUT gets log.txt and json.tar, one JSON per
# section (the device tool brings back 8 files at most, and 8 sections write one), packed again at the
# start of each section, so a run cut short keeps what its sections wrote.
#
# On the device machine (its own torch; flowaccent's dependencies carried as wheels in .whl/, which
# `bash benchmarks/gpu_wheels.sh` makes here first):
#   run: bash benchmarks/gpu_checks.sh   with carry [".whl"] (and ".old", if made), timeout_s 600
# QUICK=1: tiny sizes on the CPU, to check the script here (numbers meaningless), with the venv's Python:
#   QUICK=1 PY=.venv/bin/python OUT=/tmp/gpu_quick bash benchmarks/gpu_checks.sh
# Each section is stopped as Ctrl-C stops it (SIGINT, then SIGKILL 20 s on), so it removes its /tmp/bench_*
# corpus: timeout's SIGTERM left them (44 MB at quick sizes, gigabytes at full ones).
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
J=$(mktemp -d)
BUDGET=${BUDGET:-540}
T0=$(date +%s)
exec > >(tee -a "$OUT/log.txt") 2>&1
PY=${PY:-python3}
if [ -d .whl ] && [ "${QUICK:-0}" != 1 ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
el() { tar -cf "$OUT/json.tar" -C "$J" .; echo "== $(( $(date +%s) - T0 )) s: $*"; }
left() { local l=$(( BUDGET - ($(date +%s) - T0) )); [ "$1" -lt "$l" ] && l=$1; [ "$l" -lt 5 ] && l=5; echo "$l"; }
OLD=(); [ -d .old/flowaccent ] && OLD=(--other-tree .old)
TRAIN=(--repeats 2); EPOCHS=(--frames 240000 --batch 4096 --epochs 3 --repeats 2); SCORE=(--repeats 2 --large-repeats 1)
VALID=(--repeats 5); STARTUP=(--repeats 3); PRECISION=(--seeds 1)
if [ "${QUICK:-0}" = 1 ]; then
  TRAIN=(--frames 20000 --batch 1000 --repeats 1 --steps 1)
  EPOCHS=(--frames 20000 --batch 1000 --epochs 3 --repeats 1 --steps 1); VALID=(--utts 6 --utt-frames 50 --repeats 1)
  SCORE=(--frames 10000 --scale 2 --hidden 16 --blocks 2 --repeats 1 --large-repeats 1); STARTUP=(--repeats 1 --blocks 2 --hidden 16)
  PRECISION=(--seeds 1 --num-sentences 4 --epochs 1 --train-args "--model.num-blocks 2 --model.hidden 16")
fi
el start
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | head -3
nproc
$PY -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.version.cuda,
torch.cuda.is_available() and torch.cuda.get_device_name()); import flowaccent, nflows, kaldiio; print('imports ok')" \
  || { echo "imports failed: every section would fail (PY=$PY; QUICK=1 wants PY=.venv/bin/python)"; el end; exit 1; }
el unit tests of the host-device copies, ActNorm, tf32 and the blur mask on the GPU
timeout -s INT -k 20 "$(left 40)" $PY -m pytest -q -p no:cacheprovider tests/test_transfer.py tests/flows/test_norm.py \
  tests/test_runtime.py tests/blurmask/test_targets.py > "$J/unit.txt" 2>&1; status=$?
tail -3 "$J/unit.txt"; [ "$status" = 0 ] || echo "unit tests failed: $status"; rm -f "$J/unit.txt"
el precision: scoring in each precision, and one seed trained in each
timeout -s INT -k 20 "$(left 270)" $PY benchmarks/bench_precision.py "${PRECISION[@]}" --json "$J/precision.json" \
  || echo "precision failed: $?"
el the eager step: host launch against GPU busy time, and what the trainer adds
timeout -s INT -k 20 "$(left 60)" $PY benchmarks/gpu_launch.py --json "$J/launch.json" || echo "launch failed: $?"
el where the start-up of scoring goes: fresh processes, one step more each, and a profile of one score command
timeout -s INT -k 20 "$(left 60)" $PY benchmarks/bench_startup.py "${STARTUP[@]}" --profile || echo "startup failed: $?"
el where the host still waits for the GPU in train and score
timeout -s INT -k 20 "$(left 45)" $PY benchmarks/gpu_syncs.py --json "$J/syncs.json" || echo "syncs failed: $?"
el train, eager, against .old
timeout -s INT -k 20 "$(left 120)" $PY benchmarks/bench_train.py --no-compile "${TRAIN[@]}" "${OLD[@]}" --json "$J/train.json" \
  || echo "train failed: $?"
el score, 65536 frames per forward, against .old
timeout -s INT -k 20 "$(left 100)" $PY benchmarks/bench_score.py "${SCORE[@]}" --batch-frames 65536 "${OLD[@]}" \
  --json "$J/score_65536.json" || echo "score 65536 failed: $?"
el validation, joined batches against one forward per utterance
timeout -s INT -k 20 "$(left 40)" $PY benchmarks/bench_validation.py "${VALID[@]}" --json "$J/validation.json" \
  || echo "validation failed: $?"
el train, eager, 3 epochs of 240k frames at batch 4096, against .old
timeout -s INT -k 20 "$(left 90)" $PY benchmarks/bench_train.py --no-compile "${EPOCHS[@]}" "${OLD[@]}" \
  --json "$J/train_epochs.json" || echo "train epochs failed: $?"
el score, default batch, against .old
timeout -s INT -k 20 "$(left 90)" $PY benchmarks/bench_score.py "${SCORE[@]}" "${OLD[@]}" --json "$J/score.json" \
  || echo "score failed: $?"
el end
