"""The baseline-vs-now table: error rate, error codes and retry share for the provider class or
when they moved; rates change in points."""

from __future__ import annotations

from datetime import datetime, timezone

from llm_incident.commands.views import comparison_table, metrics_reply
from llm_incident.commands.replies import Section, Table
from llm_incident.metrics.compare import Comparison, deltas
from llm_incident.metrics.stats import WindowStats
from llm_incident.metrics.windows import Baseline, Window

T0 = datetime(2026, 11, 26, 13, tzinfo=timezone.utc)
T1 = datetime(2026, 11, 26, 14, tzinfo=timezone.utc)
CARD = ["calls", "flagged rate", "p95 duration", "p95 tokens_out", "cost per call"]


def _comparison(now: dict, base: dict) -> Comparison:
    n = WindowStats(route="r", start=T0, end=T1, **now)
    b = WindowStats(route="r", start=T0, end=T1, **base)
    return Comparison("r", Window(T0, T1), Baseline("previous", Window(T0, T1)), n, b, deltas(n, b))


STEADY = {"calls": 100, "errors": 1, "error_rate": 0.01, "error_codes": {"500": 1},
          "retries": 2, "retry_share": 0.02, "flagged_rate": 0.01}
STORM = {"calls": 120, "errors": 26, "error_rate": 26 / 120, "error_codes": {"429": 24, "500": 2},
         "retries": 15, "retry_share": 0.125, "flagged_rate": 0.01}


def _rows(table: Table) -> dict[str, tuple[str, ...]]:
    return {row[0]: row[1:] for row in table.rows}


def test_flat_errors_and_retries_stay_hidden_for_other_classes():
    table = comparison_table(_comparison(STEADY, STEADY), incident_class="cost")
    assert [row[0] for row in table.rows] == CARD


def test_the_provider_class_always_shows_them_after_calls():
    table = comparison_table(_comparison(STEADY, STEADY), incident_class="provider")
    assert [row[0] for row in table.rows] == [
        "calls", "error rate", "errors 500", "retry share", *CARD[1:]]
    assert _rows(table)["error rate"] == ("1.0%", "1.0%", "±0.0 pts")
    assert _rows(table)["errors 500"] == ("1 (1.0%)", "1 (1.0%)", "±0.0 pts")


def test_moved_errors_show_for_any_class_with_counts_and_points():
    table = comparison_table(_comparison(STORM, STEADY))
    rows = _rows(table)
    assert [row[0] for row in table.rows][:5] == [
        "calls", "error rate", "errors 429", "errors 500", "retry share"]
    assert rows["error rate"] == ("1.0%", "21.7%", "+20.7 pts")
    assert rows["errors 429"] == ("0 (0.0%)", "24 (20.0%)", "+20.0 pts")
    assert rows["errors 500"] == ("1 (1.0%)", "2 (1.7%)", "+0.7 pts")
    assert rows["retry share"] == ("2.0%", "12.5%", "+10.5 pts")
    assert rows["calls"] == ("100", "120", "+20%")


def test_metrics_reply_leads_with_the_error_headline():
    reply = metrics_reply(_comparison(STORM, {**STEADY, "error_rate": 0.0, "errors": 0,
                                              "error_codes": {}}), incident_class="provider")
    (verdicts,) = [b for b in reply.blocks if isinstance(b, Section) and b.text.startswith("•")]
    assert verdicts.text.splitlines()[0] == "• error rate +21.7 pts from 0 (21.7% vs 0.0%)"
