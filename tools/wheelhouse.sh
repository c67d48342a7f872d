#!/usr/bin/env bash
# Makes, here, what travels to the GPU machine for tools/train_release.sh:
#   DIR/wheels/      keras, namex, optree for CPython 3.12 manylinux x86-64
#                    (the GPU host has JAX, numpy, h5py, absl-py, rich,
#                    ml-dtypes, packaging and Pillow, but no Keras, no network)
#   DIR/train_y.npz  uint8 Y planes of the 291 training images (T91 + BSD200)
#   DIR/bench_y.npz  uint8 Y planes of Set5, Set14, B100: HR and MATLAB LR x2/x3/x4
# Usage: tools/wheelhouse.sh DIR [DATASETS]   (DATASETS defaults to ../shared/datasets)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:?usage: tools/wheelhouse.sh DIR [DATASETS]}"
data="${2:-$here/../shared/datasets}"
py="${PYTHON:-python3}"
mkdir -p "$dir/wheels"
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d "$dir/wheels" keras==3.15.1 namex==0.1.0 optree==0.20.0
PYTHONPATH="$here" "$py" - "$dir" "$data" <<'PY'
import os, sys
from vdsr_tf.data.degradation import pack_y_planes
from vdsr_tf.evaluation.benchmark import pack_benchmark_y
out, data = sys.argv[1:3]
n = pack_y_planes([os.path.join(data, "train", "T91"), os.path.join(data, "train", "BSD200")],
                  os.path.join(out, "train_y.npz"))
m = pack_benchmark_y(data, ["Set5", "Set14", "B100"], [2, 3, 4], os.path.join(out, "bench_y.npz"))
print(f"packed {n} training planes and {m} benchmark planes")
PY
du -sh "$dir"/wheels "$dir"/*.npz "$dir"
