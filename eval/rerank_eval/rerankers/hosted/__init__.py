"""Hosted rerank APIs (Cohere, Jina, Voyage, Mixedbread) and self-hosted rerank servers (TEI,
Infinity, vLLM) as reranker kinds."""

from rerank_eval.rerankers.hosted.base import HostedReranker
from rerank_eval.rerankers.hosted.cohere import CohereReranker
from rerank_eval.rerankers.hosted.infinity import InfinityReranker
from rerank_eval.rerankers.hosted.jina import JinaReranker
from rerank_eval.rerankers.hosted.mixedbread import MixedbreadReranker
from rerank_eval.rerankers.hosted.response import HostedAPIError
from rerank_eval.rerankers.hosted.tei import TEIReranker
from rerank_eval.rerankers.hosted.vllm import VLLMReranker
from rerank_eval.rerankers.hosted.voyage import VoyageReranker

HOSTED_RERANKERS: tuple[type[HostedReranker], ...] = (
    CohereReranker, JinaReranker, VoyageReranker, MixedbreadReranker,
    TEIReranker, InfinityReranker, VLLMReranker)

__all__ = ["HOSTED_RERANKERS", "HostedAPIError", "HostedReranker", "CohereReranker",
           "InfinityReranker", "JinaReranker", "MixedbreadReranker", "TEIReranker",
           "VLLMReranker", "VoyageReranker"]
