"""``python -m rerank_eval.cli``: the same as the ``rerank-eval`` command."""

from rerank_eval.cli import main

raise SystemExit(main())
