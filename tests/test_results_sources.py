"""Every figure of docs/RESULTS.md's summary table comes from a JSON file a script wrote.

In the summary ("## Against the paper's targets, in short") each of our figures is written as a
link to its source, ``[.035](results/rec_table.json#models/kgsf/recall@1/mean)``: the file under
``docs/results/`` and the path of keys inside it. This test reads each cited value and checks that
the figure is that value rounded as printed, and that no figure in the "ours" column stands without
a source.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
SUMMARY_HEADING = "## Against the paper's targets, in short"
LINK = re.compile(r"\[(?P<figure>[^\]]+)\]\((?P<file>results/[\w.\-]+\.json)#(?P<path>[^)\s]+)\)")
NUMBER = re.compile(r"(?<![\w@/#-])\d*\.\d+|\b\d{1,3}(?:,\d{3})+\b")


def summary_rows(text: str) -> list[list[str]]:
    section = text.split(SUMMARY_HEADING, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]  # header and rule left out


def cited(figure: str, file: str, path: str):
    value = json.loads((DOCS / file).read_text(encoding="utf-8"))
    for key in path.split("/"):
        value = value[int(key)] if isinstance(value, list) else value[key]
    return value


def matches(figure: str, value) -> bool:
    text = figure.strip().rstrip("%").replace(",", "")
    if isinstance(value, str):
        return text == value
    decimals = len(text.split(".", 1)[1]) if "." in text else 0
    scale = 100 if figure.strip().endswith("%") else 1
    return abs(float(text) - round(float(value) * scale, decimals)) <= 10 ** -decimals / 2 + 1e-9


def test_summary_table_cites_its_sources():
    rows = summary_rows((DOCS / "RESULTS.md").read_text(encoding="utf-8"))
    assert rows, "the summary table is empty"
    checked = 0
    for row in rows:
        ours = row[1]
        for link in LINK.finditer(ours):
            value = cited(link["figure"], link["file"], link["path"])
            assert matches(link["figure"], value), f"{link['figure']} but {link['file']}#{link['path']} holds {value}"
            checked += 1
        bare = NUMBER.findall(LINK.sub("", ours))
        assert not bare or "not reproduced" in ours, f"figures without a source in the summary: {bare} in {ours!r}"
    assert checked >= 10


@pytest.mark.parametrize("figure,value,ok", [(".035", 0.0353, True), (".035", 0.0356, False), ("1,342", 1342, True),
                                             ("63.2%", 0.632, True), ("2.4", 2.449, True), ("2.4", 2.46, False)])
def test_rounding_rule(figure, value, ok):
    assert matches(figure, value) is ok
