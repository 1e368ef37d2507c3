#!/usr/bin/env bash
# First run on a GPU node: StyleGAN2 256x256 training it/s (vanilla, RTIL; batch 16), ILO steps/s
# (batch 64) and PRILO images/s; fp32 vs bf16, NCHW vs channels_last, eager vs compiled kernels.
# Budget: <= 8 minutes on one GPU. Results: benchmarks/results/gpu_check_<gpu name>.json.
#   bash benchmarks/gpu_check.sh              # on a GPU node (CUDA_VISIBLE_DEVICES picks the GPU)
#   bash benchmarks/gpu_check.sh --cpu-smoke  # tiny sizes on the CPU, seconds: checks the script only
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" != "--cpu-smoke" ]] && ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "error: no CUDA GPU visible to torch; run on a GPU node (nvidia-smi) or pass --cpu-smoke" >&2
  exit 2
fi
export WANDB_MODE=offline
exec timeout 480 python benchmarks/gpu_check.py "$@"
