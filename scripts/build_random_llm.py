"""Build a random-weight causal LM with a published architecture, for benchmarking only.

Its scores mean nothing; its cost per token is the real model's: same layers, widths, heads,
vocabulary (the output head over 151,669 rows is what the card's reference loop computes at
every position). A real Qwen tokenizer cannot be downloaded here, so a byte-level BPE with
Qwen2's pre-tokenizer pattern and the chat special tokens is trained on the given corpus (by
default SciFact's): token counts per passage are then realistic for that text, though not
Qwen's own. The embedding matrix is padded to the real vocabulary size (ids the tokenizer
never emits), so memory and head cost match the real model.

Usage:
  python scripts/build_random_llm.py --out /tmp/qwen3-reranker-0.6b-random \\
      [--arch qwen3-reranker-0.6b] [--corpus ../shared/data/scifact/corpus.jsonl] \\
      [--tokenizer-vocab 32000] [--seed 0]
  python scripts/build_random_llm.py --out /tmp/tiny --arch tiny   # seconds, for a smoke run
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Qwen3-Reranker-0.6B is Qwen3ForCausalLM on the Qwen3-0.6B backbone (model card,
# https://huggingface.co/Qwen/Qwen3-Reranker-0.6B: 0.6B parameters, 28 layers, 32k context).
# The values below are those of its config.json (and of Qwen3-Embedding-0.6B's, the same
# backbone): https://huggingface.co/Qwen/Qwen3-Reranker-0.6B/blob/main/config.json
ARCHS: dict[str, dict] = {
    "qwen3-reranker-0.6b": {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
        "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
        "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
        "vocab_size": 151669, "max_position_embeddings": 40960, "rope_theta": 1000000,
        "rms_norm_eps": 1e-06, "hidden_act": "silu", "attention_bias": False,
        "tie_word_embeddings": True, "bos_token_id": 151643, "eos_token_id": 151645,
    },
    # Two layers, narrow: the same code paths in seconds (smoke runs of the bench).
    "tiny": {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
        "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
        "vocab_size": 8192, "max_position_embeddings": 4096, "rope_theta": 1000000,
        "rms_norm_eps": 1e-06, "hidden_act": "silu", "attention_bias": False,
        "tie_word_embeddings": True,
    },
}

# Qwen2/Qwen3 tokenizer.json pre-tokenizer split pattern.
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
              r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Words the presets need as whole tokens (answer tokens, template words).
EXTRA_TEXT = ["yes\nno\nYes\nNo\n1\n0\n"] * 200 + [
    "Judge whether the Document meets the requirements based on the Query and the Instruct "
    "provided. Note that the answer can only be \"yes\" or \"no\". <Instruct>: <Query>: "
    "<Document>: Given a web search query, retrieve relevant passages that answer the query"
] * 50


def corpus_text(path: Path) -> Iterator[str]:
    """Texts of a BEIR corpus.jsonl (title + text) or lines of a plain text file."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if path.suffix == ".jsonl":
                doc = json.loads(line)
                yield f"{doc.get('title', '')} {doc.get('text', '')}".strip()
            else:
                yield line


def train_tokenizer(corpus: Path, vocab: int, out: Path):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)

    def texts() -> Iterator[str]:
        yield from corpus_text(corpus)
        yield from EXTRA_TEXT

    tok.train_from_iterator(texts(), trainer)
    tok.add_tokens([AddedToken("<think>", special=False), AddedToken("</think>", special=False)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|endoftext|>",
                                   eos_token="<|im_end|>", model_max_length=32768)
    fast.save_pretrained(out)
    return fast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--arch", default="qwen3-reranker-0.6b", choices=sorted(ARCHS))
    parser.add_argument("--corpus", type=Path,
                        default=ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl")
    parser.add_argument("--tokenizer-vocab", type=int, default=32000,
                        help="BPE vocabulary trained on the corpus (at most the arch's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    arch = dict(ARCHS[args.arch])
    args.out.mkdir(parents=True, exist_ok=True)
    vocab = min(args.tokenizer_vocab, arch["vocab_size"] - 8)
    tokenizer = train_tokenizer(args.corpus, vocab, args.out)
    if len(tokenizer) > arch["vocab_size"]:
        raise SystemExit(f"tokenizer has {len(tokenizer)} tokens > vocab_size")
    arch["pad_token_id"] = tokenizer.pad_token_id
    arch["bos_token_id"] = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    arch["eos_token_id"] = tokenizer.eos_token_id
    config = AutoConfig.for_model(**{k: v for k, v in arch.items() if k != "architectures"})
    config.architectures = arch["architectures"]
    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(args.out)
    params = sum(p.numel() for p in model.parameters())
    (args.out / "RANDOM_WEIGHTS.txt").write_text(
        f"Random weights (seed {args.seed}) with the architecture {args.arch} "
        f"({params:,} parameters), built by scripts/build_random_llm.py for benchmarking.\n"
        f"Tokenizer: byte-level BPE, {len(tokenizer):,} tokens, trained on {args.corpus.name}; "
        f"embedding rows up to {arch['vocab_size']:,} (the real vocabulary size) are never "
        "emitted. Scores are meaningless; costs per token are the architecture's.\n",
        encoding="utf-8")
    print(f"{args.out}: {args.arch}, {params:,} parameters, tokenizer {len(tokenizer):,} tokens")


if __name__ == "__main__":
    main()
