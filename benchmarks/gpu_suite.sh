#!/usr/bin/env bash
# The GPU machine's benchmarks, one command (BUILD.md, "On the GPU machine"):
#   benchmarks/gpu_suite.sh --output_dir=DIR [--wheelhouse=DIR] [--python=PATH]
#                           [--parts=latency,throughput[,claims]] [--claims_args="..."]
#                           [--dry_run]
# latency:    benchmarks/gpu_inference.py -> DIR/latency.json
# throughput: benchmarks/train_throughput.py, the fast engine at batch 128/256/512
#             and K = 50/200, bf16 then fp32 -> DIR/throughput_{mixed_bfloat16,float32}.json
# claims:     benchmarks/paper_claims.py (its runs under $TMPDIR; --claims_args adds
#             flags, e.g. "--depth=20 --filters=64 --steps=2000") -> DIR/claims.{md,json}
# Everything printed also goes to DIR/suite.log: at most 6 files, flat, as the
# device tool's $OUT wants. --wheelhouse (tools/wheelhouse.sh) installs Keras with
# no network and trains on its train_y.npz, scores on its bench_y.npz.
# --dry_run: tiny sizes on CPU with the bundled samples (the test suite runs it).
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
py=python3 wheelhouse="" out="" parts="latency,throughput" claims_args="" dry=0
for arg in "$@"; do
  case "$arg" in
    --python=*) py="${arg#*=}" ;;
    --wheelhouse=*) wheelhouse="${arg#*=}" ;;
    --output_dir=*) out="${arg#*=}" ;;
    --parts=*) parts="${arg#*=}" ;;
    --claims_args=*) claims_args="${arg#*=}" ;;
    --dry_run) dry=1 ;;
    *) echo "gpu_suite.sh: error: unknown argument $arg" >&2; exit 2 ;;
  esac
done
if [ -z "$out" ]; then echo "gpu_suite.sh: error: --output_dir is required" >&2; exit 2; fi
for part in ${parts//,/ }; do
  case "$part" in latency|throughput|claims) ;;
    *) echo "gpu_suite.sh: error: unknown part $part (valid: latency, throughput, claims)" >&2
       exit 2 ;;
  esac
done
mkdir -p "$out" || exit 2
. "$here/tools/wheelhouse_env.sh"
data=() bench=()
if [ -n "$wheelhouse" ]; then
  data=("--data=$wheelhouse/train_y.npz") bench=("--bench=$wheelhouse/bench_y.npz")
fi
if [ "$dry" = 1 ]; then
  latency=(--dry_run)
  throughput=(--depth=3 --filters=8 --patch_size=16 --batch_sizes=4 --steps_per_call=1,2
              --seconds=0.2)
  claims=(--dry_run)
else
  latency=()
  throughput=(--batch_sizes=128,256,512 --steps_per_call=50,200 --seconds=10
              --pool_workers="$(nproc)")
  # shellcheck disable=SC2206  # word-split on purpose: a list of flags
  claims=($claims_args)
fi
run_parts() {
  use_wheelhouse "$py" "$here" "$wheelhouse" || return 3
  local rc=0
  for part in ${parts//,/ }; do
    echo "== $part"
    case "$part" in
      latency)
        "$py" "$here/benchmarks/gpu_inference.py" "${latency[@]}" --json="$out/latency.json" \
          || rc=1 ;;
      throughput)
        for mp in mixed_bfloat16 float32; do
          "$py" "$here/benchmarks/train_throughput.py" --engines=fast "${throughput[@]}" \
            "${data[@]}" --mixed_precision=$mp --json="$out/throughput_$mp.json" || rc=1
        done ;;
      claims)
        local work="${TMPDIR:-/tmp}/vdsr_claims"
        "$py" "$here/benchmarks/paper_claims.py" --output_dir="$work" "${data[@]}" \
          "${bench[@]}" "${claims[@]}" || rc=1
        cp "$work/claims.md" "$work/claims.json" "$out/" || rc=1 ;;
    esac
  done
  return $rc
}
run_parts 2>&1 | tee "$out/suite.log"
exit "${PIPESTATUS[0]}"
