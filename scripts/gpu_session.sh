#!/usr/bin/env bash
# The GPU checks of one lent device session, in two calls (the F32 cross-encoder checkpoint,
# 87 MiB, is larger than one call may carry, so it travels in two parts).
#
#   [LLM_DATA=scifact] scripts/gpu_session.sh llm  CARRY   # phase 1: wheels, SciFact, DL19, model part 1;
#                                       # causal-LM bench rows (#19) on the random-weight
#                                       # Qwen3-Reranker-0.6B architecture
#   scripts/gpu_session.sh ce   CARRY   # phase 2 (same warm machine): model part 2; the
#                                       # cross-encoder benches of benchmarks/ with the F32
#                                       # checkpoint of ../shared/models/minilm-l6-scifact-ce
#
# CARRY holds what the session prepared beside the tree: whl/ (Python 3.12 wheels the device
# image lacks: pydantic, and transformers/tokenizers matching this project's), data.tar.xz
# (the SciFact and DL19 slices of ../shared/data), scifact_bm25_top100.trec (the project's
# BM25 over SciFact test, written where bm25s is installed), model.part1/model.part2 and
# model.sha256 (the F32 safetensors, split), COMMIT (the commit of the tree sent).
# Reports go to $OUT; the session copies them to benchmarks/ with their provenance.
set -uo pipefail
phase=$1 carry=$2
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=true
OUT="${OUT:-$PWD/gpu-out}"; mkdir -p "$OUT" /tmp/stage /tmp/data
if [[ -d "$carry/whl" ]]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$carry"/whl/*.whl || exit 1
fi
export PYTHONPATH="$PWD/eval:/tmp/site"
[[ -f "$carry/data.tar.xz" ]] && tar -xJf "$carry/data.tar.xz" -C /tmp/data
cp "$carry"/model.part* "$carry"/model.sha256 "$carry"/*.trec /tmp/stage/ 2>/dev/null
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt"
python3 -c 'import torch, transformers, sentence_transformers as st, pydantic
print("torch", torch.__version__, "transformers", transformers.__version__,
      "sentence-transformers", st.__version__, "pydantic", pydantic.VERSION)' | tee -a "$OUT/gpu.txt"
SCIFACT=/tmp/data/scifact DL19=/tmp/data/msmarco-passage-dl19-pool
RUN=/tmp/stage/scifact_bm25_top100.trec
bench() {  # name, time limit, then bench arguments
  local name=$1 limit=$2; shift 2
  timeout "$limit" python3 -m rerank_eval bench "$@" --device cuda \
    --json "$OUT/$name.json" 2>&1 | grep -v "Loading weights" | tee "$OUT/$name.txt"
}
case $phase in
  llm)
    python3 scripts/build_random_llm.py --out /tmp/qwen3-reranker-0.6b-random \
      --corpus "$SCIFACT/corpus.jsonl" 2>&1 | tail -1
    for data in ${LLM_DATA:-scifact dl19}; do
      if [[ $data == scifact ]]; then args=(--beir "$SCIFACT" --run "$RUN")
      else args=(--beir "$DL19" --run "$DL19/runs/bm25_top100.trec"); fi
      bench "bench_llm_gpu_h200_${data}10q_top20" 150 --kind causal-lm \
        --model /tmp/qwen3-reranker-0.6b-random "${args[@]}" --depth 20 --queries 10 \
        --max-length 512 --rounds 3
    done ;;
  ce)
    cat /tmp/stage/model.part1 /tmp/stage/model.part2 > /tmp/stage/model.safetensors
    model=/tmp/minilm-l6-scifact-ce; mkdir -p $model
    cp "$carry"/model_files/* $model/ && mv /tmp/stage/model.safetensors $model/
    (cd $model && sha256sum -c /tmp/stage/model.sha256) | tee -a "$OUT/gpu.txt" || exit 1
    common=(--model $model --batch-size 64 --max-length 256 --rounds 3
            --dtypes float32,bfloat16,float16)
    bench bench_gpu_h200_dl19_top100_f32 200 "${common[@]}" --beir "$DL19" \
      --run "$DL19/runs/bm25_top100.trec" --depth 100
    bench bench_gpu_h200_scifact50_top100_f32 200 "${common[@]}" --beir "$SCIFACT" \
      --run "$RUN" --depth 100 --queries 50 ;;
esac
