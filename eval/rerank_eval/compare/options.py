"""The choices and defaults of the paired statistics, importable without numpy, ranx or scipy
(the CLI lists them in ``--help``)."""

TESTS = ("t-test", "wilcoxon", "randomization")
CORRECTIONS = ("holm", "bonferroni", "none")
DEFAULT_PERMUTATIONS = 10_000
DEFAULT_BOOTSTRAP = 10_000
#: The conventions compare and gate check both sides share (``compare.conventions``), in the
#: order a difference is reported; ``--allow-mismatch`` takes these names.
CONVENTION_FIELDS = ("dataset", "query_sample", "relevance_threshold", "first_stage", "depths",
                     "tie_order")
