"""``rerank-eval schema``: the JSON Schema of config files (editor completion, CI checks)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    schema = sub.add_parser("schema", parents=[common],
                            help="print the JSON Schema of config files (for editor completion "
                                 "and checks of configs/*.yaml)")
    schema.set_defaults(func=_cmd_schema)


def _cmd_schema(args: argparse.Namespace) -> int:
    from rerank_eval.config import config_json_schema

    print(json.dumps(config_json_schema(), indent=2))
    return 0
