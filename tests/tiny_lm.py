"""Tiny random causal-LM and seq2seq checkpoints with real (trained) tokenizers, built in the
tests: real code paths, no downloads, seconds to build.

- A byte-level BPE with Qwen2's pre-tokenizer split pattern (so line breaks split pieces as
  in Qwen's tokenizer) and the chat special tokens, trained on a few sentences; ``yes``,
  ``no``, ``Yes``, ``1`` and ``0`` are whole tokens, as in Qwen's and Gemma's vocabularies.
- A Metaspace ("▁") BPE like T5's sentencepiece, ``</s>`` appended to every sequence, with
  ``▁true``/``▁false`` tokens.
"""

from __future__ import annotations

from pathlib import Path

# Qwen2's pre-tokenizer pattern (tokenizer.json of Qwen/Qwen2.5 and Qwen3 checkpoints).
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
              r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

TEXT = [
    "Judge whether the Document meets the requirements based on the Query and the Instruct.",
    "Given a web search query, retrieve relevant passages that answer the query.",
    "You are a search relevance expert who evaluates how well documents match search queries.",
    "Given a query A and a passage B, determine whether the passage contains an answer.",
    "The capital of China is Beijing. Gravity is a force that attracts two bodies.",
    "Vitamin D deficiency is associated with an increased risk of fractures in adults.",
    "Query: what causes fever Document: fever is caused by infection Relevant: true false",
    "instruction: query: document: Relevance: <Instruct>: <Query>: <Document>: A: B:",
] * 20 + ["yes\nno\nYes\nNo\n1\n0\ntrue\nfalse\n"] * 50


def build_qwen_tokenizer(folder: Path, *, bos: bool = False):
    """A Qwen-like fast tokenizer (``bos``: a Gemma-like ``<bos>`` before every sequence)."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<bos>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TEXT, trainer)
    tok.add_tokens([AddedToken("<think>", special=False), AddedToken("</think>", special=False)])
    kwargs = {}
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>",
                                                                    tok.token_to_id("<bos>"))])
        kwargs["bos_token"] = "<bos>"
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|endoftext|>",
                                   eos_token="<|im_end|>", **kwargs)
    fast.save_pretrained(folder)
    return fast


def build_causal_lm(folder: Path, *, bos: bool = False, seed: int = 0) -> Path:
    """A 2-layer Qwen3ForCausalLM with random weights and the tokenizer above, in ``folder``."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = build_qwen_tokenizer(folder, bos=bos)
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         head_dim=8, max_position_embeddings=1024, tie_word_embeddings=False,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    with torch.no_grad():  # larger logits than the default init: rankings with real spread
        model.lm_head.weight.mul_(50.0)
    model.save_pretrained(folder)
    return folder


def build_t5_tokenizer(folder: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<pad>", "</s>", "<unk>"],
                                  show_progress=False)
    tok.train_from_iterator(TEXT, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>")
    fast.save_pretrained(folder)
    return fast


def build_t5(folder: Path, seed: int = 0) -> Path:
    """A 2-layer T5ForConditionalGeneration with random weights and a T5-like tokenizer."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = build_t5_tokenizer(folder)
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2,
                      num_decoder_layers=2, num_heads=4, decoder_start_token_id=0,
                      pad_token_id=0, eos_token_id=1)
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config)
    model.save_pretrained(folder)
    return folder
