"""The inference engine below the rerankers: pair tokenization, length buckets, batched
forward passes, CUDA graphs. It knows tokenizers and torch modules, not rerankers."""
