#!/usr/bin/env bash
# Run a command with an empty, private Triton cache, removed afterwards: `make test` uses it so that
# every run starts the way a fresh machine does (nothing compiled yet), in whatever order tests run.
#   scripts/cold_triton_cache.sh CMD [ARGS...]
# If TRITON_CACHE_DIR is already set, it is kept (say, to reuse compiled kernels between runs);
# .ci/run unsets it, so CI always starts cold. The command's exit status is this script's.
set -u
if [ "$#" -eq 0 ]; then
  echo "usage: $0 COMMAND [ARGS...]" >&2
  exit 2
fi
if [ -n "${TRITON_CACHE_DIR:-}" ]; then
  echo "Triton cache: $TRITON_CACHE_DIR (your TRITON_CACHE_DIR; kept as it is)"
  exec "$@"
fi
dir="$(mktemp -d "${TMPDIR:-/tmp}/ttc-triton-cache.XXXXXX")" || exit 1
trap 'rm -rf "$dir"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export TRITON_CACHE_DIR="$dir"
echo "Triton cache: $dir (empty, private to this run, removed afterwards)"
"$@"
