# Sourced by the GPU host's one-command jobs (tools/train_release.sh,
# benchmarks/gpu_suite.sh). use_wheelhouse PY REPO [WHEELHOUSE] installs
# WHEELHOUSE/wheels (from tools/wheelhouse.sh) into a private folder with no
# network, then exports PYTHONPATH (that folder and the repository),
# KERAS_BACKEND=jax and PYTHONUNBUFFERED=1. Returns 3 if the install fails.
# With a wheelhouse (on the device) it also points JAX's persistent
# compilation cache at a folder under $TMPDIR, unless JAX_COMPILATION_CACHE_DIR
# is set: a second call on the same warm machine (another cycle, the same
# shapes) loads the compiled train step instead of compiling it again
# (BUILD.md, "A lease, call by call").
use_wheelhouse() {
  local py="$1" repo="$2" wheelhouse="${3:-}"
  if [ -n "$wheelhouse" ]; then
    local site="${TMPDIR:-/tmp}/vdsr_site"
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$site" "$wheelhouse"/wheels/*.whl || return 3
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-${TMPDIR:-/tmp}/vdsr_jax_cache}"
  fi
  export KERAS_BACKEND=jax PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
}
