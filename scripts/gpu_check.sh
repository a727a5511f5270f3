#!/usr/bin/env bash
# GPU speed check on a machine with a CUDA GPU (installs nothing).
# Runs `rerank-eval bench` on the DL19 slice's official BM25 top-100 (4,300 pairs) and, when
# SCIFACT_DIR and SCIFACT_RUN are set, on SciFact BM25 top-100 pairs (long passages), each
# interleaving the sentence-transformers peer, the bare-forward ceiling and the engine in
# fp32 / bf16 / fp16 (+ torch.compile if COMPILE=1); the auto dtype also without CUDA graphs.
# Reports go to $OUT/bench_gpu_*.{json,txt}.
#
#   OUT=/tmp/out MODEL=../shared/models/minilm-l6-scifact-ce scripts/gpu_check.sh
# Env: OUT (default ./bench-out), DL19 (the DL19 BEIR folder, default found under ../shared),
#      MODEL (default ../shared/models/minilm-l6-scifact-ce), PYTHON (default python),
#      TIME_LIMIT seconds per bench (default 240), ROUNDS (5), BATCH (64), COMPILE (0/1),
#      DTYPES (default float32,bfloat16,float16),
#      SCIFACT_DIR + SCIFACT_RUN (+ SCIFACT_QUERIES, default 50) for the second bench.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/bench-out}"
mkdir -p "$OUT"
if [[ -z "${DL19:-}" ]]; then
  for candidate in ./shared ../shared /work/shared; do
    if [[ -d "$candidate/data/msmarco-passage-dl19-pool" ]]; then
      DL19="$candidate/data/msmarco-passage-dl19-pool"; break
    fi
  done
fi
: "${DL19:?set DL19 to the DL19 passage slice (BEIR layout)}"
MODEL="${MODEL:-../shared/models/minilm-l6-scifact-ce}"
PYTHON="${PYTHON:-python}"
"$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA GPU visible to torch")'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" || true
EXTRA=()
[[ "${COMPILE:-0}" == 1 ]] && EXTRA+=(--compile)
# Tokenizers use every core, as the CLI sets by default (a user's default too).
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/eval${PYTHONPATH:+:$PYTHONPATH}"
bench() {  # name, then bench arguments
  local name=$1; shift
  timeout "${TIME_LIMIT:-240}" "$PYTHON" -m rerank_eval bench "$@" \
    --model "$MODEL" --device cuda --batch-size "${BATCH:-64}" --max-length 256 \
    --rounds "${ROUNDS:-5}" --dtypes "${DTYPES:-float32,bfloat16,float16}" "${EXTRA[@]}" \
    --json "$OUT/bench_gpu_$name.json" 2>&1 | tee "$OUT/bench_gpu_$name.txt"
}
bench dl19 --beir "$DL19" --run "$DL19/runs/bm25_top100.trec" --depth 100
if [[ -n "${SCIFACT_DIR:-}" ]]; then
  bench scifact --beir "$SCIFACT_DIR" --run "$SCIFACT_RUN" --depth 100 \
    --queries "${SCIFACT_QUERIES:-50}"
fi
