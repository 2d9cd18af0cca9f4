#!/bin/bash
# Second GPU call: the compiled column with CUDA graphs (torch.compile mode reduce-overhead), fp32 then bf16.
export PYTHONUNBUFFERED=1
T0=$(date +%s)
exec > >(tee -a "$OUT/log2.txt") 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
timeout 110 python3 benchmarks/bench_model.py --device cuda --precision fp32 --compile-mode reduce-overhead --steps 30 \
  --repeats 3 --json "$OUT/model_fp32_reduce_overhead.json" 2>&1 | grep -v "Extern Choice" || echo "fp32 failed"
echo "== $(( $(date +%s) - T0 )) s"
timeout $(( 165 - ($(date +%s) - T0) )) python3 benchmarks/bench_model.py --device cuda --precision bf16 \
  --compile-mode reduce-overhead --steps 30 --repeats 3 --json "$OUT/model_bf16_reduce_overhead.json" 2>&1 \
  | grep -v "Extern Choice" || echo "bf16 failed"
echo "== $(( $(date +%s) - T0 )) s"
