#!/usr/bin/env bash
# The GPU release job, one command (see tools/train_release.py and BUILD.md):
#   tools/train_release.sh --output_dir=DIR --budget_s=N [--wheelhouse=DIR]
#                          [--python=PATH] [--dry_run] [other train_release.py flags]
# --wheelhouse=DIR (from tools/wheelhouse.sh): installs DIR/wheels into a private
# folder (no network) and trains on DIR/train_y.npz, scoring on DIR/bench_y.npz.
# Everything the job prints also goes to OUTPUT_DIR/job.log.
set -uo pipefail
export VDSR_JOB_START="${VDSR_JOB_START:-$(date +%s.%N)}"
here="$(cd "$(dirname "$0")/.." && pwd)"
py=python3 wheelhouse="" out="" args=()
for arg in "$@"; do
  case "$arg" in
    --python=*) py="${arg#*=}" ;;
    --wheelhouse=*) wheelhouse="${arg#*=}" ;;
    --output_dir=*) out="${arg#*=}"; args+=("$arg") ;;
    *) args+=("$arg") ;;
  esac
done
if [ -z "$out" ]; then echo "train_release.sh: error: --output_dir is required" >&2; exit 2; fi
mkdir -p "$out" || exit 2
log="$out/job.log"
. "$here/tools/wheelhouse_env.sh"
# On the device (a wheelhouse), JAX's persistent compilation cache under $TMPDIR: a second
# cycle on the same warm machine loads the train step the first compiled (BUILD.md, "A lease,
# call by call"); JAX_COMPILATION_CACHE_DIR= (empty) turns it off. The benchmarks do not use
# it: their compile times stay compile times.
if [ -n "$wheelhouse" ]; then
  export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR-${TMPDIR:-/tmp}/vdsr_jax_cache}"
fi
# XLA's and the GPU libraries' warnings and errors reach job.log (cli.run would silence them).
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-1}"
{
  use_wheelhouse "$py" "$here" "$wheelhouse" || exit 3
  if [ -n "$wheelhouse" ]; then
    args+=("--data=$wheelhouse/train_y.npz" "--bench=$wheelhouse/bench_y.npz")
  fi
  "$py" "$here/tools/train_release.py" "${args[@]}"
} 2>&1 | tee "$log"
exit "${PIPESTATUS[0]}"
