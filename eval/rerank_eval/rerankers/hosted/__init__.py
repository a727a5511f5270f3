"""Hosted rerank APIs (Cohere, Jina, Voyage, Mixedbread) as reranker kinds."""

from rerank_eval.rerankers.hosted.base import HostedReranker
from rerank_eval.rerankers.hosted.cohere import CohereReranker
from rerank_eval.rerankers.hosted.jina import JinaReranker
from rerank_eval.rerankers.hosted.mixedbread import MixedbreadReranker
from rerank_eval.rerankers.hosted.response import HostedAPIError
from rerank_eval.rerankers.hosted.voyage import VoyageReranker

HOSTED_RERANKERS: tuple[type[HostedReranker], ...] = (
    CohereReranker, JinaReranker, VoyageReranker, MixedbreadReranker)

__all__ = ["HOSTED_RERANKERS", "HostedAPIError", "HostedReranker", "CohereReranker",
           "JinaReranker", "MixedbreadReranker", "VoyageReranker"]
