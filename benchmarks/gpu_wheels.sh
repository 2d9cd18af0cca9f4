#!/bin/bash
# Makes .whl/: the wheels of flowaccent's dependencies that the device machine's image lacks, for
# benchmarks/gpu_checks.sh (run there with carry [".whl"]). The image has torch, numpy, scipy, PyYAML,
# tqdm, scikit-learn and matplotlib (the device tool's KINDS.md), and Python 3.12 with no registry to reach;
# the others are taken here at the versions this checkout's .venv runs (the ones its tests passed with):
# binary wheels for CPython 3.12 on manylinux x86_64, and nflows, which PyPI has as a source archive only,
# built into a wheel here. Made here once, before the lease: the lease's minutes go to the GPU.
#   bash benchmarks/gpu_wheels.sh [DIR]   (DIR: .whl)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.whl}
VENV_PY=${VENV_PY:-.venv/bin/python}
[ -x "$VENV_PY" ] || { echo "gpu_wheels: $VENV_PY not found: run 'make install' first" >&2; exit 1; }
BINARY=(soundfile cffi pycparser kaldi-native-fbank)  # soundfile needs cffi, which needs pycparser
SOURCE=(kaldiio nflows)                                # pure Python; nflows has no wheel on PyPI
pinned() {
  "$VENV_PY" - "$@" <<'PYEOF'
import sys
from importlib.metadata import version
print(" ".join(f"{name}=={version(name)}" for name in sys.argv[1:]))
PYEOF
}
read -r -a binary <<< "$(pinned "${BINARY[@]}")"
read -r -a source <<< "$(pinned "${SOURCE[@]}")"
rm -rf "$DIR" && mkdir -p "$DIR"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d "$DIR" "${binary[@]}"
python3 -m pip wheel -q --no-deps -w "$DIR" "${source[@]}"
count=$(find "$DIR" -type f -name '*.whl' | wc -l)
if [ "$count" -ne $(( ${#BINARY[@]} + ${#SOURCE[@]} )) ]; then
  echo "gpu_wheels: $count wheels in $DIR, expected $(( ${#BINARY[@]} + ${#SOURCE[@]} ))" >&2
  exit 1
fi
echo "gpu_wheels: $DIR: ${binary[*]} ${source[*]} ($(du -sh "$DIR" | cut -f1))"
