"""The overview's "change" column never reads "-0%" or "-0.0 pts"."""

import pytest

from llm_incident.dashboard.overview import Cell
from llm_incident.metrics.compare import Delta


def cell(kind: str, abs_: float, rel: float | None) -> Cell:
    return Cell(1.0, kind, Delta(stat="x", now=1.0, baseline=1.0, abs=abs_, rel=rel, verdict=""),
                False)


@pytest.mark.parametrize("kind, abs_, rel, text", [
    ("usd", -0.001, -0.004, "±0%"), ("usd", 0.001, 0.004, "±0%"), ("ms", -5, -0.06, "-6%"),
    ("rate", -0.0004, None, "±0.0 pts"), ("rate", 0.0213, None, "+2.1 pts"),
])
def test_no_negative_zero(kind, abs_, rel, text):
    assert cell(kind, abs_, rel).change == text
