# Sourced by the GPU host's one-command jobs (tools/train_release.sh,
# benchmarks/gpu_suite.sh). use_wheelhouse PY REPO [WHEELHOUSE] installs
# WHEELHOUSE/wheels (from tools/wheelhouse.sh) into a private folder with no
# network, then exports PYTHONPATH (that folder and the repository),
# KERAS_BACKEND=jax and PYTHONUNBUFFERED=1. Returns 3 if the install fails.
use_wheelhouse() {
  local py="$1" repo="$2" wheelhouse="${3:-}"
  if [ -n "$wheelhouse" ]; then
    local site="${TMPDIR:-/tmp}/vdsr_site"
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$site" "$wheelhouse"/wheels/*.whl || return 3
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  export KERAS_BACKEND=jax PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
}
