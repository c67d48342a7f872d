#!/usr/bin/env bash
# Issue 38's device calls, prepared and dry-run tested (BUILD.md, "A lease, call by call").
#
#   tools/lease.sh --call=1 --output_dir=$OUT --wheelhouse=.wheelhouse   # run tool: timeout_s 590
#       One more cycle of the chain (tools/train_release.sh, --budget_s=500, from
#       tools/release/state.npz or --state), then at most 45 s of GPU latency
#       (benchmarks/gpu_inference.py: the 1024² forward pass in bf16 and fp32, the
#       1080p Upscaler at x2). Brings back 8 files: the job's 7 and latency.json.
#   tools/lease.sh --call=2 --output_dir=$OUT --wheelhouse=.wheelhouse   # timeout_s 150
#       The throughput levers, bf16, in at most 110 s (benchmarks/train_throughput.py,
#       the fast engine): 48² patches at batch 256 and 512 x K = 200 and 400 (256 x 200 is
#       the release job's setting, timed again as the baseline on the same card), then 64²
#       at 256 x 200. Brings back levers_48.json, levers_64.json and lease.log.
#
# Options: --python=PATH (default python3), --state=FILE and --peak_lr=X (call 1: the cycle's
# start and peak learning rate, as tools/train_release.py takes them), --dry_run (tiny sizes on
# CPU with the bundled samples; the test suite runs both calls so). Each part runs under its
# own time limit, and the benchmarks write their JSON after every row, so a cut-short part
# keeps what it measured. Exit status: the release job's for call 1 (the latency part only
# logs its failure); for call 2, 1 if a part failed or ran out of time, 3 if the wheelhouse did
# not install.
set -uo pipefail
export VDSR_JOB_START="${VDSR_JOB_START:-$(date +%s.%N)}"
here="$(cd "$(dirname "$0")/.." && pwd)"
py=python3 wheelhouse="" out="" call="" state="" peak_lr="" dry=0
for arg in "$@"; do
  case "$arg" in
    --call=*) call="${arg#*=}" ;;
    --python=*) py="${arg#*=}" ;;
    --wheelhouse=*) wheelhouse="${arg#*=}" ;;
    --output_dir=*) out="${arg#*=}" ;;
    --state=*) state="${arg#*=}" ;;
    --peak_lr=*) peak_lr="${arg#*=}" ;;
    --dry_run) dry=1 ;;
    *) echo "lease.sh: error: unknown argument $arg" >&2; exit 2 ;;
  esac
done
fail() { echo "lease.sh: error: $1" >&2; exit 2; }
[ -n "$out" ] || fail "--output_dir is required"
case "$call" in 1|2) ;; *) fail "--call must be 1 or 2, not '${call}'" ;; esac
[ "$call" = 2 ] && [ -n "$state$peak_lr" ] && fail "--state and --peak_lr are for call 1 (the cycle)"
if [ -z "$wheelhouse" ] && [ "$dry" = 0 ]; then
  fail "--wheelhouse is required on the device (tools/wheelhouse.sh)"
fi
mkdir -p "$out" || exit 2

release=("--output_dir=$out" "--python=$py")
[ -n "$wheelhouse" ] && release+=("--wheelhouse=$wheelhouse")
[ -n "$state" ] && release+=("--state=$state")
[ -n "$peak_lr" ] && release+=("--peak_lr=$peak_lr")
data=()
[ -n "$wheelhouse" ] && data=("--data=$wheelhouse/train_y.npz")
if [ "$dry" = 1 ]; then
  release+=(--dry_run)
  latency=(--dry_run) latency_s=60
  levers=(--depth=3 --filters=8 --batch_sizes=4 --steps_per_call=1,2 --seconds=0.2)
  levers_64=(--depth=3 --filters=8 --batch_sizes=4 --steps_per_call=1 --seconds=0.2)
  levers_s=90 levers_64_s=60
else
  release+=(--budget_s=500 "--pool_workers=$(nproc)")
  latency=(--precisions=bf16,fp32 --upscale_repeats=3) latency_s=45
  levers=(--batch_sizes=256,512 --steps_per_call=200,400 --seconds=5 "--pool_workers=$(nproc)")
  levers_64=(--batch_sizes=256 --steps_per_call=200 --seconds=5 "--pool_workers=$(nproc)")
  levers_s=80 levers_64_s=30
fi

. "$here/tools/wheelhouse_env.sh"
if [ "$call" = 1 ]; then
  bash "$here/tools/train_release.sh" "${release[@]}"
  rc=$?
  [ "$rc" = 2 ] && exit 2  # a bad flag: the job said which, and nothing ran
  {
    echo "== latency (at most ${latency_s} s)"
    if use_wheelhouse "$py" "$here" "$wheelhouse"; then
      timeout "$latency_s" "$py" "$here/benchmarks/gpu_inference.py" "${latency[@]}" \
        --json="$out/latency.json" || echo "lease.sh: the latency part ended with status $?"
    else
      echo "lease.sh: the latency part was skipped: the wheelhouse did not install"
    fi
  } 2>&1 | tee -a "$out/job.log"
  exit "$rc"
fi

{
  rc=0
  use_wheelhouse "$py" "$here" "$wheelhouse" || exit 3
  echo "== levers, 48² patches (at most ${levers_s} s)"
  timeout "$levers_s" "$py" "$here/benchmarks/train_throughput.py" --engines=fast \
    --patch_size=48 --mixed_precision=mixed_bfloat16 "${levers[@]}" "${data[@]}" \
    --json="$out/levers_48.json" || rc=1
  echo "== levers, 64² patches (at most ${levers_64_s} s)"
  timeout "$levers_64_s" "$py" "$here/benchmarks/train_throughput.py" --engines=fast \
    --patch_size=64 --mixed_precision=mixed_bfloat16 "${levers_64[@]}" "${data[@]}" \
    --json="$out/levers_64.json" || rc=1
  exit $rc
} 2>&1 | tee "$out/lease.log"
exit "${PIPESTATUS[0]}"
