"""Logs, progress bars and third-party noise: the library logs (INFO per finished step), bars
appear only on a terminal (or when forced), the CLI prints our lines and nothing of
transformers', numba's, bm25s's or Ray's, and importing the CLI stays light."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
from rerank_eval.datasets import Dataset
from rerank_eval.progress import Progress, progress_bars, set_progress_bars

ROOT = Path(__file__).resolve().parents[1]
EVAL_DIR = ROOT / "eval"
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
# What the third-party libraries print when left alone (before this was fixed, the quickstart
# showed the first four).
NOISE = ("Loading weights", "LOAD REPORT", "[transformers]", "NumbaTypeSafetyWarning",
         "Token indices sequence length", "Token authentication", "it/s]", "Warning:",
         "Building index")
ANSI = "\x1b["


@pytest.fixture
def bars_forced():
    previous = set_progress_bars(True)
    yield
    set_progress_bars(previous)


def _tiny_dataset(passage_words: int = 30) -> Dataset:
    corpus = {f"d{i}": f"passage {i} about cells and genes " + "word " * passage_words
              for i in range(12)}
    queries = {f"q{i}": f"query {i} cells" for i in range(4)}
    qrels = {q: {"d0": 1} for q in queries}
    return Dataset("tiny", corpus, queries, qrels)


def _shortlist(dataset: Dataset, depth: int = 6):
    from rerank_eval.runs import Run

    docs = list(dataset.corpus)
    return Run.from_scores("first", {q: {d: float(depth - i) for i, d in enumerate(docs[:depth])}
                                     for q in dataset.queries})


def _cross_encoder(model: Path, **params):
    from rerank_eval.rerankers.cross_encoder import CrossEncoder

    return CrossEncoder("tiny", {"model": str(model), "max_length": 32, **params},
                        base_dir=Path.cwd())


# --- the CLI as a user runs it ----------------------------------------------------------------
def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    code = "import sys; from rerank_eval.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=900)


def test_quickstart_stderr_has_our_lines_and_no_third_party_noise(tmp_path):
    """stderr is a pipe here (not a terminal): no bars, no colour codes, no warnings of other
    libraries; the load report and the step timings come as our own one-line messages."""
    proc = _cli(["run", str(QUICKSTART), "--out", str(tmp_path / "out")], tmp_path)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert ANSI not in err and "\r" not in err, err
    for text in NOISE:
        assert text not in err, f"{text!r} in stderr:\n{err}"
    lines = err.splitlines()
    assert any(re.fullmatch(r"bm25: indexed 300 documents in [\d.]+ s \([\d,.]+ documents/s\)",
                            line) for line in lines), err
    assert any(re.fullmatch(r"minilm-bi: scored 611 pairs in [\d.]+ s \([\d,.]+ pairs/s\)",
                            line) for line in lines), err
    assert any(line.startswith("WARNING: rerankers[minilm-ce-untrained].model: "
                               "BertForSequenceClassification: 2 weights MISSING")
               for line in lines), err
    assert "minilm-ce-untrained @20: ndcg@10=" in err  # the runner's lines are still there

    # --quiet: only the results on stdout (the run reads its scores back from the cache; no
    # latency probes, to keep the test short).
    config = tmp_path / "quickstart-quiet.yaml"
    text = QUICKSTART.read_text(encoding="utf-8")
    assert "latency: {queries: 12, warmup: 2, seed: 0}" in text
    config.write_text(text.replace("latency: {queries: 12, warmup: 2, seed: 0}",
                                   "latency: {queries: 0}"), encoding="utf-8")
    quiet = _cli(["run", str(config), "--out", str(tmp_path / "quiet"), "--quiet"], tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "", quiet.stderr
    assert "minilm-ce-untrained" in quiet.stdout and "results:" in quiet.stdout


def test_importing_the_cli_imports_no_heavy_library():
    code = textwrap.dedent("""
        import sys
        import rerank_eval.cli
        rerank_eval.cli.build_parser()
        print(sorted(m for m in ("torch", "ranx", "scipy", "transformers", "numba", "ray",
                                 "pandas", "sentence_transformers") if m in sys.modules))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=EVAL_DIR, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_help_runs_without_heavy_imports():
    proc = subprocess.run([sys.executable, "-m", "rerank_eval", "--help"], capture_output=True,
                          text=True, cwd=EVAL_DIR, timeout=120)
    commands = "{run,bench,compare,gate,agree,report,cache,schema}"
    assert proc.returncode == 0 and commands in proc.stdout


# --- progress bars ------------------------------------------------------------------------------
def test_bars_follow_the_terminal_unless_forced(monkeypatch):
    previous = set_progress_bars(None)
    try:
        monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
        assert not progress_bars()
        monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
        assert progress_bars()
        set_progress_bars(False)
        assert not progress_bars()
        set_progress_bars(True)
        monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
        assert progress_bars()
    finally:
        set_progress_bars(previous)


def test_scoring_shows_a_bar_with_pairs_per_second_when_forced(tiny_cross_encoder, capsys,
                                                                bars_forced):
    from rerank_eval.scoring.shortlist import score_shortlist

    dataset = _tiny_dataset()
    reranker = _cross_encoder(tiny_cross_encoder)
    score = reranker.score

    def slow_score(pairs):  # past the bar's refresh interval (0.5 s), so a rate is drawn
        time.sleep(0.6)
        return score(pairs)

    reranker.score = slow_score
    seen = []
    score_shortlist(reranker, dataset, _shortlist(dataset), pairs_per_chunk=6,
                    progress=lambda done, total: seen.append((done, total)))
    err = capsys.readouterr().err
    assert "tiny: scoring" in err
    assert re.search(r"[\d.]+ pairs/s", err), err  # the bar's rate
    assert re.search(r"<\d\d:\d\d", err), err  # and its ETA
    assert seen == [(6, 24), (12, 24), (18, 24), (24, 24)]  # the caller's callback still runs


def test_no_bar_when_stderr_is_not_a_terminal(tiny_cross_encoder, capsys, monkeypatch, caplog):
    from rerank_eval.scoring.shortlist import score_shortlist

    caplog.set_level(logging.INFO, logger="rerank_eval")
    previous = set_progress_bars(None)
    try:
        monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
        dataset = _tiny_dataset()
        score_shortlist(_cross_encoder(tiny_cross_encoder), dataset, _shortlist(dataset))
    finally:
        set_progress_bars(previous)
    assert "pairs/s" not in capsys.readouterr().err  # no bar...
    assert any(m.startswith("tiny: scored 24 pairs in ") for m in caplog.messages)  # ...a line


def test_a_failed_step_removes_its_bar_without_a_summary(capsys, caplog, bars_forced):
    caplog.set_level(logging.INFO, logger="rerank_eval")
    with pytest.raises(RuntimeError), Progress("step", 3, unit="things") as bar:
        bar.update()
        raise RuntimeError("boom")
    assert bar.closed and not caplog.messages
    assert "step" in capsys.readouterr().err  # the bar was drawn


# --- library logs ---------------------------------------------------------------------------------
def test_library_steps_log_at_info(tiny_cross_encoder, caplog, tmp_path):
    """BM25, scoring (with cache hits and truncated pairs) and latency probes each log one
    INFO line; nothing is printed (the library has no print and no log callables)."""
    from rerank_eval.first_stage import BM25
    from rerank_eval.scoring.cache import ScoreCache
    from rerank_eval.scoring.latency import LatencyConfig, measure_rerank_latency
    from rerank_eval.scoring.shortlist import score_shortlist

    caplog.set_level(logging.INFO, logger="rerank_eval")
    dataset = _tiny_dataset(passage_words=60)  # longer than max_length 32: truncated
    bm25 = BM25(None, base_dir=Path.cwd())
    run = bm25.retrieve(dataset, depth=6)
    reranker = _cross_encoder(tiny_cross_encoder)
    with ScoreCache(tmp_path / "scores.sqlite") as cache:
        score_shortlist(reranker, dataset, run, cache=cache)
        score_shortlist(reranker, dataset, run, cache=cache)
    measure_rerank_latency(reranker, dataset, run, [3, 6], LatencyConfig(queries=2, warmup=1))
    records = [r for r in caplog.records if r.name.startswith("rerank_eval")]
    assert all(r.levelno == logging.INFO for r in records), [r.getMessage() for r in records]
    # A loaded machine adds "latency figures are unreliable: ..." lines (INFO, checked above);
    # whether they appear depends on the machine, not on the code under test.
    messages = [r.getMessage() for r in records
                if "latency figures are unreliable" not in r.getMessage()]
    expected = [r"bm25: indexed 12 documents in [\d.]+ s \(.* documents/s\)",
                r"bm25: retrieved top-6 for 4 queries in [\d.]+ s .*",
                r"tiny: scored 24 pairs in [\d.]+ s \([\d,.]+ pairs/s\)",
                r"tiny: 24 of 24 pairs truncated at 32 tokens",
                r"tiny: 24 pairs from the score cache in [\d.]+ s",
                r"tiny: 24 of 24 pairs truncated at 32 tokens",
                r"tiny: latency measured on 2 queries x 2 depths in [\d.]+ s \(after 1 warm-up\)"]
    assert len(messages) == len(expected), messages
    for pattern, message in zip(expected, messages):
        assert re.fullmatch(pattern, message), (pattern, message)
    assert {r.name for r in records} == {"rerank_eval.first_stage.bm25",
                                         "rerank_eval.scoring.shortlist",
                                         "rerank_eval.scoring.latency"}


def test_library_noise_is_silenced_where_models_and_indexes_are_made(tmp_path):
    """With the root logger at DEBUG (a notebook's basicConfig), bm25s says nothing; a passage
    longer than the tokenizer's maximum gives no "Token indices" warning (the scoring pass
    counts it); loading a model shows no bar and no load-report table."""
    code = textwrap.dedent("""
        import logging
        from pathlib import Path
        logging.basicConfig(level=logging.DEBUG, format="%(name)s|%(message)s")
        for name in ("urllib3", "filelock", "fsspec", "numba", "matplotlib", "PIL"):
            logging.getLogger(name).setLevel(logging.WARNING)
        from rerank_eval.datasets import Dataset
        from rerank_eval.first_stage import BM25
        from rerank_eval.rerankers.bi_encoder import BiEncoder
        from rerank_eval.rerankers.cross_encoder import CrossEncoder
        from rerank_eval.scoring.shortlist import score_shortlist
        corpus = {f"d{i}": "cells and genes " + "word " * 600 for i in range(3)}
        ds = Dataset("long", corpus, {"q": "cells"}, {"q": {"d0": 1}})
        run = BM25(None, base_dir=Path.cwd()).retrieve(ds, depth=3)
        bi = BiEncoder("bi", {"model": "packaged:all-minilm-l6-v2"}, base_dir=Path.cwd())
        score_shortlist(bi, ds, run)
        ce = CrossEncoder("ce", {"model": "packaged:all-minilm-l6-v2", "max_length": 64},
                          base_dir=Path.cwd())
        score_shortlist(ce, ds, run)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600,
                          env={**_env(), "PYTHONPATH": str(EVAL_DIR)})
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert ANSI not in err and "\r" not in err, err
    for text in NOISE:
        assert text not in err, f"{text!r} in stderr:\n{err}"
    assert not [line for line in err.splitlines() if line.startswith("bm25s")], err
    assert "rerank_eval.scoring.shortlist|bi: 3 of 3 pairs truncated at 256 tokens" in err
    assert "rerank_eval.scoring.shortlist|ce: 3 of 3 pairs truncated at 64 tokens" in err
    assert ("rerank_eval.models|rerankers[ce].model: BertForSequenceClassification: 2 weights "
            "MISSING (newly initialized, not in the checkpoint): ") in err


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_load_report_becomes_one_line():
    from rerank_eval.models import summarize_load_report

    report = ("\x1b[1mBertForSequenceClassification LOAD REPORT\x1b[0m from: /m\n"
              "Key               | Status  | \n------------------+---------+-\n"
              "classifier.bias   | \x1b[31mMISSING\x1b[0m | \n"
              "classifier.weight | \x1b[31mMISSING\x1b[0m | \n"
              "cls.predictions   | UNEXPECTED |  | \n\nNotes:\n- MISSING:\tthose params...")
    level, line = summarize_load_report(report)
    assert level == logging.WARNING and "\n" not in line and ANSI not in line
    assert line == ("BertForSequenceClassification: 2 weights MISSING (newly initialized, not "
                    "in the checkpoint): classifier.bias, classifier.weight; 1 weights "
                    "UNEXPECTED (in the checkpoint, unused): cls.predictions")
    level, _ = summarize_load_report(report.replace("MISSING", "UNEXPECTED"))
    assert level == logging.INFO  # extra checkpoint weights only: nothing is wrong
    assert summarize_load_report("\x1b[1msomething else\x1b[0m\nmore") == (
        logging.WARNING, "something else")


def test_numba_type_safety_warning_is_ignored_only_around_ranx():
    from numba.core.errors import NumbaTypeSafetyWarning
    from rerank_eval.metrics.jit import quiet_jit

    def warn():
        warnings.warn_explicit("unsafe cast from uint64 to int64. Precision may be lost.",
                               NumbaTypeSafetyWarning, "ranx/metrics/ndcg.py", 72)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_jit():
            warn()
        assert caught == []
        warn()  # not muted anywhere else
        assert len(caught) == 1


def test_ray_token_notice_becomes_our_line(monkeypatch, caplog, capfd):
    ray = pytest.importorskip("ray")
    from rerank_eval.scoring import ray_executor
    from rerank_eval.scoring.executors import ExecutorConfig

    def fake_init(**_kwargs):
        logging.getLogger(ray_executor.RAY_AUTH_LOGGER).warning(
            "Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled "
            "to opt out.")

    monkeypatch.setattr(ray, "init", fake_init)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    caplog.set_level(logging.DEBUG, logger="rerank_eval")
    executor = object.__new__(ray_executor.RayExecutor)
    executor.config = ExecutorConfig.on_ray()
    executor._connect()
    assert "Token authentication" not in capfd.readouterr().err
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert info == ["executor.ray: started a local Ray instance (token authentication on; "
                    "RAY_AUTH_MODE=disabled turns it off): 2 CPUs, 0 GPUs"]
    assert not [r for r in caplog.records if r.name.startswith("ray")]


# --- the CLI's logging setup ----------------------------------------------------------------------
def test_verbosity_options_go_before_or_after_the_command_and_leave_no_trace(tmp_path, capsys):
    from rerank_eval.cli import build_parser, main

    parser = build_parser()
    assert parser.parse_args(["--quiet", "cache", "info"]).quiet
    assert parser.parse_args(["cache", "info", "-q"]).quiet
    assert parser.parse_args(["-v", "cache", "info"]).verbose
    args = parser.parse_args(["cache", "info"])
    assert not args.quiet and not args.verbose
    with pytest.raises(SystemExit):
        parser.parse_args(["cache", "info", "-v", "-q"])
    capsys.readouterr()

    logger = logging.getLogger("rerank_eval")
    before = (logger.level, list(logger.handlers))
    previous = set_progress_bars(None)
    try:
        for argv in (["cache", "info", "--path", str(tmp_path / "c.sqlite"), "--quiet"],
                     ["-v", "cache", "info", "--path", str(tmp_path / "c.sqlite")]):
            assert main(argv) == 0
            assert (logger.level, list(logger.handlers)) == before
            assert set_progress_bars(None) is None  # --quiet's "no bars" was undone
    finally:
        set_progress_bars(previous)
    assert "not created yet" in capsys.readouterr().out


def test_cli_log_lines_are_plain_and_warnings_say_so(capsys):
    from rerank_eval.cli import cli_logging

    log = logging.getLogger("rerank_eval.test")
    with cli_logging():
        log.debug("hidden")
        log.info("step done")
        log.warning("look at this")
    with cli_logging(verbose=True):
        log.debug("details")
    with cli_logging(quiet=True):
        log.warning("quiet hides warnings")
        log.error("but not errors")
    assert capsys.readouterr().err.splitlines() == [
        "step done", "WARNING: look at this", "details", "ERROR: but not errors"]


def test_hosted_requests_have_a_bar_and_a_debug_line(monkeypatch, capsys, caplog, bars_forced):
    from fake_rerank_server import FakeRerankServer
    from rerank_eval.rerankers import build_reranker

    monkeypatch.setenv("COHERE_API_KEY", "test-key")
    caplog.set_level(logging.DEBUG, logger="rerank_eval")
    server = FakeRerankServer("test-key", doc_cap=3)
    try:
        reranker = build_reranker("api", "cohere", {
            "base_url": server.base_url("cohere"), "max_docs_per_request": 2,
            "api_key_env": "COHERE_API_KEY"}, base_dir=Path.cwd())
        try:
            reranker.score([("q", f"passage {i}") for i in range(5)])
        finally:
            reranker.close()
    finally:
        server.close()
    assert "api: requests" in capsys.readouterr().err
    lines = [r for r in caplog.records if r.name == "rerank_eval.rerankers.hosted.base"]
    assert [r.levelno for r in lines] == [logging.DEBUG]
    assert re.fullmatch(r"api: sent 3 requests in [\d.]+ s \(.* requests/s\)",
                        lines[0].getMessage())
