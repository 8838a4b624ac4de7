#!/usr/bin/env bash
# The prepared GPU check (r2i bench gpu): scan associative vs sequential, acting throughput, and the whole update
# S3M vs GRU at the reference POPGym size in bfloat16 and float32 with device memory. About 9 minutes on one GPU; JSON
# lines go to benchmarks/results/gpu_<device>_<time>.jsonl. Needs r2i installed with its GPU extra:
#     pip install '.[cuda]' && benchmarks/gpu_check.sh
# Extra arguments go to `r2i bench gpu` (e.g. --budget-s 300 when less time is left).
set -euo pipefail
cd "$(dirname "$0")/.."
# Allocate device memory as needed instead of 75 % up front, so the reported peak is what the programs use.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
PYTHON=${PYTHON:-python}
"$PYTHON" -c 'import jax, sys; b = jax.default_backend(); print(f"gpu_check: backend {b}, {jax.devices()}", file=sys.stderr); sys.exit(b == "cpu")' \
  || { echo "gpu_check: no GPU visible to JAX (install r2i with the [cuda] extra)" >&2; exit 1; }
exec "$PYTHON" -m r2i.cli bench gpu "$@"
