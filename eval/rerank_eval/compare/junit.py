"""JUnit XML for gate verdicts, so CI systems (GitHub, GitLab, Jenkins) show each rule."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from rerank_eval.compare.gate import FAIL, NOT_APPLICABLE, Verdict
from rerank_eval.files import atomic_write_text


def junit_xml(verdicts: list[Verdict], suite: str = "rerank-eval gate",
              notes: Sequence[str] = ()) -> str:
    """One testcase per rule: a regression is a <failure>, a rule that does not apply is
    <skipped> with its reason. ``notes`` (the allowed convention differences) go to the
    suite's <properties> and <system-out>, so CI shows what was compared despite them."""
    failures = sum(v.status == FAIL for v in verdicts)
    skipped = sum(v.status == NOT_APPLICABLE for v in verdicts)
    root = ET.Element("testsuites", name=suite, tests=str(len(verdicts)),
                      failures=str(failures), errors="0")
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(verdicts)),
                       failures=str(failures), errors="0", skipped=str(skipped))
    if notes:
        props = ET.SubElement(ts, "properties")
        for i, note in enumerate(notes):
            ET.SubElement(props, "property", name=f"note.{i + 1}", value=note)
    for v in verdicts:
        case = ET.SubElement(ts, "testcase", classname="rerank_eval.gate", name=v.rule)
        if v.status == FAIL:
            ET.SubElement(case, "failure", message=v.message, type="regression").text = v.message
        elif v.status == NOT_APPLICABLE:
            ET.SubElement(case, "skipped", message=v.message)
        ET.SubElement(case, "system-out").text = v.message
    if notes:
        ET.SubElement(ts, "system-out").text = "\n".join(notes)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def error_xml(message: str, suite: str = "rerank-eval gate") -> str:
    """The gate could not judge (bad input, a convention mismatch: exit 2): one testcase with
    an <error>, so CI shows why instead of a missing report."""
    root = ET.Element("testsuites", name=suite, tests="1", failures="0", errors="1")
    ts = ET.SubElement(root, "testsuite", name=suite, tests="1", failures="0", errors="1",
                       skipped="0")
    case = ET.SubElement(ts, "testcase", classname="rerank_eval.gate", name="gate input")
    ET.SubElement(case, "error", message=message, type="input").text = message
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(verdicts: list[Verdict], path: str | Path, notes: Sequence[str] = ()) -> Path:
    return atomic_write_text(path, junit_xml(verdicts, notes=notes))


def write_junit_error(message: str, path: str | Path) -> Path:
    return atomic_write_text(path, error_xml(message))
