"""``rerank-eval compare`` and ``rerank-eval gate`` (argparse wiring only; the work is in
``rerank_eval.compare``, imported when a command runs)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rerank_eval.cli.output import write_or_print
from rerank_eval.compare import options
from rerank_eval.errors import InputError

RULE_OPTIONS = ("metric", "max_drop", "alpha", "depth", "reranker", "max_p95_ratio")


class _RuleItem(argparse.Action):
    """Keeps rule options in command-line order, so ``--metric A --max-drop X --metric B
    --max-drop Y`` gives two rules."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        items = list(getattr(namespace, "rule_items", None) or [])
        items.append((self.dest, values))
        namespace.rule_items = items


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``compare`` and ``gate`` on the CLI's subparsers."""
    cmp = sub.add_parser("compare", parents=[common],
                         help="compare systems with paired significance tests")
    cmp.add_argument("inputs", nargs="+", metavar="RESULTS_OR_RUN",
                     help="results.json files (or their folders) and/or TREC run files")
    cmp.add_argument("--qrels", help="qrels file for TREC runs (BEIR tsv or TREC format)")
    cmp.add_argument("--baseline", help="system to compare against (default: the first)")
    cmp.add_argument("--metric", action="append", default=[],
                     help="metric to compare (repeatable; default: every shared metric)")
    cmp.add_argument("--depth", type=int, action="append", default=[],
                     help="reranking depth (repeatable; default: every depth)")
    cmp.add_argument("--test", default="t-test", choices=options.TESTS,
                     help="test behind p and significance (default: t-test)")
    cmp.add_argument("--correction", default="holm", choices=options.CORRECTIONS,
                     help="multiple-comparison correction across systems (default: holm)")
    cmp.add_argument("--alpha", type=float, default=0.05)
    cmp.add_argument("--permutations", type=int, default=options.DEFAULT_PERMUTATIONS)
    cmp.add_argument("--bootstrap", type=int, default=options.DEFAULT_BOOTSTRAP)
    cmp.add_argument("--seed", type=int, default=0)
    cmp.add_argument("--relevance-threshold", type=int, default=1,
                     help="for TREC runs: grade counted relevant by binary metrics")
    cmp.add_argument("--allow-mismatch", action="append", default=[], metavar="FIELD",
                     help="compare results that differ in this convention anyway (repeatable; "
                          f"one of {', '.join(options.CONVENTION_FIELDS)}); recorded in the "
                          "output")
    cmp.add_argument("--format", default="table", choices=("table", "md", "html", "json"))
    cmp.add_argument("--out", help="write here instead of stdout")
    cmp.set_defaults(func=_cmd_compare)

    gate = sub.add_parser(
        "gate", parents=[common],
        help="fail (exit 1) when a candidate regresses against a baseline",
        description="Rule options after --metric apply to that metric; given before any "
                    "--metric they are defaults for every rule.")
    gate.add_argument("--baseline", required=True,
                      help="baseline results.json (or folder); FILE:NAME picks its reranker NAME")
    gate.add_argument("--candidate", required=True,
                      help="candidate results.json (or folder); FILE:NAME picks its reranker "
                           "NAME (so two rerankers of one file can be gated)")
    gate.add_argument("--metric", action=_RuleItem, help="start a metric rule, e.g. ndcg@10")
    gate.add_argument("--max-drop", type=float, action=_RuleItem,
                      help="largest allowed absolute drop of the metric")
    gate.add_argument("--alpha", type=float, action=_RuleItem,
                      help="count a drop only when significant at this level")
    gate.add_argument("--depth", type=int, action=_RuleItem,
                      help="reranking depth (default: the largest in both)")
    gate.add_argument("--reranker", action=_RuleItem,
                      help="reranker name (default: the only one of each results)")
    gate.add_argument("--max-p95-ratio", type=float, action=_RuleItem,
                      help="latency rule: candidate p95 <= ratio x baseline p95 (same hardware)")
    gate.add_argument("--rules", help="YAML file of rules (instead of rule flags)")
    gate.add_argument("--test", choices=options.TESTS, help="paired test for --alpha "
                      "(default: t-test)")
    gate.add_argument("--allow-mismatch", action="append", default=[], metavar="FIELD",
                      help="gate results that differ in this convention anyway (repeatable; "
                           f"one of {', '.join(options.CONVENTION_FIELDS)}); recorded in the "
                           "summary and the JUnit file")
    gate.add_argument("--junit", help="write JUnit XML here (also on exit 2, with the error)")
    gate.set_defaults(func=_cmd_gate, rule_items=[])


def _cmd_compare(args: argparse.Namespace) -> int:
    from rerank_eval.compare.compare import compare_systems
    from rerank_eval.compare.render import render
    from rerank_eval.compare.systems import load_agreement, load_systems
    from rerank_eval.metrics import parse_metrics

    metrics = [m.name for m in parse_metrics(args.metric, "--metric")]
    if not 0 < args.alpha < 1:
        raise InputError("--alpha: expected a number between 0 and 1")
    if args.permutations < 1 or args.bootstrap < 1:
        raise InputError("--permutations and --bootstrap must be >= 1")
    systems = load_systems(args.inputs, qrels_path=args.qrels, metrics=metrics,
                           relevance_threshold=args.relevance_threshold)
    report = compare_systems(systems, baseline=args.baseline, metrics=metrics,
                             depths=args.depth, test=args.test, correction=args.correction,
                             alpha=args.alpha, permutations=args.permutations,
                             bootstrap=args.bootstrap, seed=args.seed,
                             allow_mismatch=args.allow_mismatch,
                             agreement=load_agreement(args.inputs))
    text = render(report, args.format)
    write_or_print(text, args.out, "comparison")
    return 0


def rules_from_flags(items: list[tuple[str, Any]]) -> list[Any]:
    """Group rule options: each --metric or --max-p95-ratio starts a rule; options before
    the first rule are defaults for all. The groups are validated as the rules of a
    ``--rules`` file are (GateRules), errors naming the flag."""
    from rerank_eval.compare.gate import GateRules
    from rerank_eval.params import parse

    defaults: dict[str, Any] = {}
    groups: list[dict[str, Any]] = []
    for dest, value in items:
        flag = "--" + dest.replace("_", "-")
        if dest in ("metric", "max_p95_ratio"):
            groups.append({dest: value})
        elif not groups:
            defaults[dest] = value
        elif dest in groups[-1]:
            raise InputError(f"{flag} given twice for one rule")
        elif "max_p95_ratio" in groups[-1] and dest in ("max_drop", "alpha"):
            raise InputError(f"{flag} does not apply to the latency rule (--max-p95-ratio)")
        else:
            groups[-1][dest] = value
    if "max_drop" in defaults:
        raise InputError("--max-drop must follow the --metric it limits")
    if not groups:
        return []
    for g in groups:
        if "metric" in g and "max_drop" not in g:
            raise InputError(f"--metric {g['metric']}: needs --max-drop")
    rules = parse(GateRules, {**defaults, "rules": groups}, name=_flag)
    return list(rules.rules)


def _flag(loc: tuple[Any, ...]) -> str:
    """The command-line flag of a GateRules field."""
    field = next((p for p in reversed(loc) if isinstance(p, str)), "rules")
    return "--" + field.replace("_", "-")


def _cmd_gate(args: argparse.Namespace) -> int:
    """Judge every rule; with ``--junit``, the JUnit file is written whatever the exit code
    (on bad input, exit 2, it holds the error)."""
    from rerank_eval.compare.junit import write_junit_error

    try:
        return _gate(args)
    except InputError as e:
        if args.junit:
            write_junit_error(str(e), args.junit)
            print(f"junit: {args.junit}", file=sys.stderr)
        raise


def _gate(args: argparse.Namespace) -> int:
    from rerank_eval.compare.gate import exit_code, format_verdicts, gate, load_rules
    from rerank_eval.compare.junit import write_junit

    test = args.test or "t-test"
    if args.rules:
        if args.rule_items:
            raise InputError("give rules either as flags or with --rules, not both")
        rules, yaml_test = load_rules(args.rules)
        test = args.test or yaml_test
    else:
        rules = rules_from_flags(args.rule_items)
    outcome = gate(args.baseline, args.candidate, rules, test,
                   allow_mismatch=args.allow_mismatch)
    print(format_verdicts(outcome.verdicts, outcome.notes()))
    if args.junit:
        write_junit(outcome.verdicts, args.junit, notes=outcome.notes())
        print(f"junit: {args.junit}", file=sys.stderr)
    return exit_code(outcome.verdicts)
