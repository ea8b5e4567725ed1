#!/usr/bin/env bash
# ESM-2 embedding on a lent GPU: our forward (cafa_mlflow.embed.encoder, scaled_dot_product_attention) vs
# fair-esm's module, random weights of the 8M, 150M and 650M architectures, fp16 and bf16 autocast, token
# budget 16,384. Reports residues/s (synchronized GPU time), peak GPU memory (torch.cuda.max_memory_allocated)
# and the SDPA kernel torch selects (FLASH_ATTENTION / EFFICIENT_ATTENTION / CUDNN_ATTENTION / MATH), and
# writes the "Embedding forward: ours vs fair-esm on GPU" section of benchmarks/RESULTS.md.
# One round, about 5 minutes on one H100 (18 processes: model build, warm-up, run).
#
#   benchmarks/gpu_embed.sh                      # PYTHON=... to pick the interpreter (needs a CUDA build of torch)
#   SCALE=0.1 benchmarks/gpu_embed.sh --no-write  # quicker, print only
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
GPU=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1 || true)
"$PY" - <<'PYEOF'
import torch
from torch.nn.attention import SDPBackend  # noqa: F401 (present in torch >= 2.3)
print("torch", torch.__version__, "CUDA", torch.version.cuda, "GPU available:", torch.cuda.is_available())
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(0), "bf16 supported:", torch.cuda.is_bf16_supported())
PYEOF
PYTHONPATH=$PWD exec "$PY" benchmarks/bench_embed.py --device cuda --archs 8M,150M,650M --precisions fp16,bf16 \
    --repeats 1 --scale "${SCALE:-0.25}" --machine "${MACHINE:-${GPU:-GPU machine}}" "$@"
