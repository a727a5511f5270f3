"""A listwise prompt as data: the chat messages that ask a model to order one window.

The ``rankgpt`` preset is the RankGPT prompt (Sun et al., 2023, github.com/sunnweiwei/RankGPT)
in the multi-turn form castorini/rank_llm uses (``rank_gpt_template.yaml``): a system line, the
instruction, then each passage as a user turn labelled ``[i]`` acknowledged by the assistant,
then the request for ``[2] > [1] > ...``. A custom template is a YAML file with the same keys;
``{num}``, ``{query}``, ``{rank}`` and ``{candidate}`` are the only placeholders (any other
brace is literal text), so a template can never reach into the program.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from rerank_eval.errors import InputError
from rerank_eval.params import Params, Str, parse
from rerank_eval.yaml_file import read_yaml

_PLACEHOLDER = re.compile(r"\{(num|query|rank|candidate)\}")

Message = dict[str, str]  # {"role": ..., "content": ...}: the chat-completions message shape


class ListwiseTemplate(Params):
    """The turns of a listwise prompt; an empty ``*_assistant`` turn is left out (the
    passages then follow the prefix in one user turn)."""

    system: Str = ""
    prefix: Str
    """Before the passages: {num} and {query} are filled in."""
    prefix_assistant: Str = ""
    body: Str = "[{rank}] {candidate}"
    """One passage: {rank} is its label 1..n, {candidate} its text."""
    body_assistant: Str = ""
    suffix: Str
    """After the passages: the request for the ranking ({num}, {query})."""

    def messages(self, query: str, passages: list[str]) -> list[Message]:
        """The chat messages for one window of ``passages`` (in the order shown)."""
        num = str(len(passages))
        out: list[Message] = []
        if self.system:
            out.append({"role": "system", "content": self.system})
        user: list[str] = [_fill(self.prefix, num=num, query=query)]
        if self.prefix_assistant:
            out.append({"role": "user", "content": user.pop()})
            out.append({"role": "assistant", "content": self.prefix_assistant})
        for i, passage in enumerate(passages, start=1):
            user.append(_fill(self.body, rank=str(i), candidate=passage))
            if self.body_assistant:
                out.append({"role": "user", "content": "\n".join(user)})
                out.append({"role": "assistant",
                            "content": _fill(self.body_assistant, rank=str(i))})
                user = []
        user.append(_fill(self.suffix, num=num, query=query))
        out.append({"role": "user", "content": "\n".join(user)})
        return out

    def digest(self) -> str:
        """SHA-256 of the template's content (part of the window-answer cache key)."""
        text = json.dumps(self.model_dump(), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fill(text: str, **values: str) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


RANKGPT = ListwiseTemplate(
    system="You are RankGPT, an intelligent assistant that can rank passages based on their "
           "relevancy to the query.",
    prefix="I will provide you with {num} passages, each indicated by number identifier [].\n"
           "Rank the passages based on their relevance to query: {query}.",
    prefix_assistant="Okay, please provide the passages.",
    body="[{rank}] {candidate}",
    body_assistant="Received passage [{rank}].",
    suffix="Search Query: {query}.\nRank the {num} passages above based on their relevance to "
           "the search query. The passages should be listed in descending order using "
           "identifiers. The most relevant passages should be listed first. The output format "
           "should be [] > [], e.g., [1] > [2]. Only response the ranking results, do not say "
           "any word or explain.",
)

PRESETS: dict[str, ListwiseTemplate] = {"rankgpt": RANKGPT}


def load_template(value: str, base_dir: Path | None, field: str) -> ListwiseTemplate:
    """A preset by name, or a template YAML file (relative to the config's folder)."""
    if value in PRESETS:
        return PRESETS[value]
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise InputError(f"{field}: neither a preset ({', '.join(PRESETS)}) nor a template "
                         f"file: {value!r}")
    raw = read_yaml(path)
    try:
        return parse(ListwiseTemplate, raw, root="template")
    except InputError as e:
        raise InputError(f"{field}: {path.name}: {e}") from None
