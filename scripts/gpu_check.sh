#!/usr/bin/env bash
# GPU speed check for a lead on a machine with a CUDA GPU (installs nothing).
# Runs `rerank-eval bench` with the packaged all-MiniLM-L6-v2 (as a cross-encoder, seeded head)
# on the DL19 slice's official BM25 top-50 (2,150 pairs), interleaving the sentence-transformers
# peer, the bare-forward ceiling and the engine in fp32 / bf16 / fp16 (+ torch.compile if
# COMPILE=1), and writes the full report to $OUT/bench_gpu.json.
#
#   OUT=/tmp/out scripts/gpu_check.sh            # from the repository root
# Env: OUT (default ./bench-out), SHARED (data folder holding data/, default ./shared or
#      ../shared), PYTHON (default python), TIME_LIMIT seconds (default 480), ROUNDS (5),
#      BATCH (32), COMPILE (0/1).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/bench-out}"
mkdir -p "$OUT"
if [[ -z "${SHARED:-}" ]]; then
  for candidate in ./shared ../shared /work/shared; do
    if [[ -d "$candidate/data/msmarco-passage-dl19-pool" ]]; then SHARED="$candidate"; break; fi
  done
fi
DL19="${SHARED:?set SHARED to the folder that holds data/msmarco-passage-dl19-pool}/data/msmarco-passage-dl19-pool"
PYTHON="${PYTHON:-python}"
"$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA GPU visible to torch")'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" || true
EXTRA=()
[[ "${COMPILE:-0}" == 1 ]] && EXTRA+=(--compile)
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH="$PWD/eval${PYTHONPATH:+:$PYTHONPATH}"
timeout "${TIME_LIMIT:-480}" "$PYTHON" -m rerank_eval bench \
  --beir "$DL19" --run "$DL19/runs/bm25_top100.trec" --depth 50 \
  --model packaged:all-minilm-l6-v2 --device cuda --batch-size "${BATCH:-32}" --max-length 256 \
  --rounds "${ROUNDS:-5}" --dtypes float32,bfloat16,float16 "${EXTRA[@]}" \
  --json "$OUT/bench_gpu.json" 2>&1 | tee "$OUT/bench_gpu.txt"
