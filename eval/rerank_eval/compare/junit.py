"""JUnit XML for gate verdicts, so CI systems (GitHub, GitLab, Jenkins) show each rule."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from rerank_eval.compare.gate import FAIL, NOT_APPLICABLE, Verdict
from rerank_eval.files import atomic_write_text


def junit_xml(verdicts: list[Verdict], suite: str = "rerank-eval gate") -> str:
    """One testcase per rule: a regression is a <failure>, a rule that does not apply is
    <skipped> with its reason."""
    failures = sum(v.status == FAIL for v in verdicts)
    skipped = sum(v.status == NOT_APPLICABLE for v in verdicts)
    root = ET.Element("testsuites", name=suite, tests=str(len(verdicts)),
                      failures=str(failures), errors="0")
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(verdicts)),
                       failures=str(failures), errors="0", skipped=str(skipped))
    for v in verdicts:
        case = ET.SubElement(ts, "testcase", classname="rerank_eval.gate", name=v.rule)
        if v.status == FAIL:
            ET.SubElement(case, "failure", message=v.message, type="regression").text = v.message
        elif v.status == NOT_APPLICABLE:
            ET.SubElement(case, "skipped", message=v.message)
        ET.SubElement(case, "system-out").text = v.message
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(verdicts: list[Verdict], path: str | Path) -> Path:
    return atomic_write_text(path, junit_xml(verdicts))
