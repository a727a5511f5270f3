"""The choices and defaults of the paired statistics, importable without numpy, ranx or scipy
(the CLI lists them in ``--help``)."""

TESTS = ("t-test", "wilcoxon", "randomization")
CORRECTIONS = ("holm", "bonferroni", "none")
DEFAULT_PERMUTATIONS = 10_000
DEFAULT_BOOTSTRAP = 10_000
