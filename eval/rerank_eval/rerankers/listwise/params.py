"""The parameters of ``kind: listwise`` (a ``rerankers:`` entry's keys)."""

from __future__ import annotations

from pydantic import ValidationInfo, field_validator, model_validator

from rerank_eval.errors import InputError
from rerank_eval.models import Device, DType
from rerank_eval.params import (
    NonEmptyStr,
    NonNegativeInt,
    NonNegativeNumber,
    Params,
    PositiveInt,
    PositiveNumber,
    Str,
    context_base_dir,
    field_error,
)
from rerank_eval.rerankers.hosted.params import TransportParams, check_http_url
from rerank_eval.rerankers.hosted.transport import is_loopback
from rerank_eval.rerankers.listwise.template import PRESETS, load_template


class ListwisePrice(Params):
    """USD per million tokens, as chat endpoints bill."""

    per_1m_input_tokens: NonNegativeNumber
    per_1m_output_tokens: NonNegativeNumber


class ListwiseParams(TransportParams):
    """``kind: listwise``: RankGPT-style sliding windows over the first stage's top-d, ranked
    by a chat endpoint (``base_url``) or a local Hugging Face causal LM (no ``base_url``)."""

    model: NonEmptyStr
    """The endpoint's model name, or a local folder / hub id of a causal LM."""
    base_url: Str | None = None
    """An OpenAI-compatible server (``{base_url}/v1/chat/completions``); none: local model.
    https, or http for loopback only."""
    api_key_env: NonEmptyStr = "OPENAI_API_KEY"
    """The environment variable holding the key (optional for a loopback base_url)."""
    window: PositiveInt = 20
    """Passages per request (RankGPT, rank_llm: 20)."""
    stride: PositiveInt = 10
    """Step between windows, back to front (RankGPT, rank_llm: 10)."""
    passes: PositiveInt = 1
    template: NonEmptyStr = "rankgpt"
    """A preset (``rankgpt``) or a template YAML file (system, prefix, prefix_assistant, body,
    body_assistant, suffix)."""
    max_passage_words: PositiveInt = 300
    """Each passage is cut to its first words (RankGPT: 300)."""
    shuffle_input: NonNegativeInt | None = None
    """A seed: show each window's passages in a random order (order-sensitivity check)."""
    temperature: NonNegativeNumber = 0.0
    max_output_tokens: PositiveInt | None = None
    """Cap on the answer's tokens (none: the endpoint's default; local: 6 per passage + 16)."""
    timeout_s: PositiveNumber = 120.0
    max_retries: NonNegativeInt = 5
    """Retries of 429/5xx/timeouts (Retry-After is honoured)."""
    concurrency: PositiveInt = 4
    """Queries in flight at once (a query's windows are sequential); local model: 1."""
    price: ListwisePrice | None = None
    """{per_1m_input_tokens: USD, per_1m_output_tokens: USD}, for cost_usd in results.json."""
    device: Device = "auto"
    """Local model only."""
    dtype: DType = "auto"
    """Local model only."""

    @field_validator("base_url", mode="after")
    @classmethod
    def _check_base_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = check_http_url(url)
        if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            raise field_error("plain http would send the API key unencrypted; use https "
                              "(http is allowed for loopback only)")
        return url

    @field_validator("template", mode="after")
    @classmethod
    def _check_template(cls, value: str, info: ValidationInfo) -> str:
        if value in PRESETS:
            return value
        try:
            load_template(value, context_base_dir(info), "template")
        except InputError as e:
            raise field_error(str(e).removeprefix("template: ")) from None
        return value

    @model_validator(mode="after")
    def _stride_fits(self) -> ListwiseParams:
        if self.stride > self.window:
            raise field_error(f"stride {self.stride} exceeds window {self.window}: passages "
                              "between windows would never be ranked", "stride")
        return self
