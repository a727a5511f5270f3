from rerank_eval.cli import main

raise SystemExit(main())
