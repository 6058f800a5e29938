"""`metrics <route> chart`: the image draws the dashboard route page's numbers (both backends),
the same bytes for the same request, and the console writes it to a file and prints the path."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from unittest import mock

import matplotlib.image
import pytest

from llm_incident import charts
from llm_incident.commands.route_chart import render_chart
from llm_incident.console.shell import Shell
from llm_incident.dashboard.ranges import RANGES
from llm_incident.dashboard.route_page import route_page
from llm_incident.demo import seed_demo

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
ARGS = {"route": "support.reply", "range": "6h", "as_of": NOW.isoformat()}


@pytest.mark.parametrize("rng", ["6h", "30d"])
def test_the_chart_draws_the_route_pages_numbers_and_marks(db, rng):
    with db.write() as session:
        seed_demo(session, "token-explosion", now=NOW)
    drawn = {}
    real = charts.range_chart_png

    def spy(title, panels, marks, **kw):
        drawn.update(title=title, panels=panels, marks=marks, **kw)
        return real(title, panels, marks, **kw)

    with db.read() as session, mock.patch.object(charts, "range_chart_png", spy):
        png = render_chart(session, {**ARGS, "range": rng})
        page = route_page(session, "support.reply", now=NOW, rng=RANGES[rng], filter_text=None)
    assert [p.stat for p in drawn["panels"]] == [c.stat for c in page.charts]
    for panel, chart in zip(drawn["panels"], page.charts, strict=True):
        assert list(panel.values) == [p.value for p in chart.points]
        assert list(panel.starts) == [p.start for p in chart.points]
    assert [(m.ts, m.label) for m in drawn["marks"]] == [(m.ts, m.label) for m in page.marks]
    assert drawn["marks"], "the demo's prompt change is a mark"
    assert (drawn["start"], drawn["end"]) == (page.window.start, page.window.end)
    assert drawn["title"].startswith(f"support.reply — last {rng} to 2026-12-02 ")
    image = matplotlib.image.imread(io.BytesIO(png), format="png")
    assert image.shape[:2] == (900, 1000)
    with db.read() as session:
        assert render_chart(session, {**ARGS, "range": rng}) == png  # a retry: the same image


def test_the_console_writes_the_chart_and_prints_its_path(db, tmp_path):
    with db.write() as session:
        seed_demo(session, "token-explosion", now=NOW)
    out = io.StringIO()
    shell = Shell(db, user="me", out=out, clock=lambda: NOW, files_dir=tmp_path / "charts")
    shell.handle_line("metrics support.reply chart 6h")
    shell.handle_line("metrics support.replly chart")
    shell.handle_line("metrics support.reply chart 5h")
    text = out.getvalue()
    path = tmp_path / "charts" / "support.reply-6h.png"
    assert f"chart written to {path.resolve()}" in text
    with db.read() as session:
        assert path.read_bytes() == render_chart(session, ARGS)
    assert "no events have been seen for route `support.replly`" in text
    assert "`routes` lists the routes seen" in text  # the console's form of /llm-incident routes
    assert "`5h` is not a range; use 1h, 6h, 24h, 7d, 30d" in text


def test_the_console_says_why_when_it_cannot_write(db, tmp_path):
    with db.write() as session:
        seed_demo(session, "token-explosion", now=NOW)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    out = io.StringIO()
    Shell(db, user="me", out=out, clock=lambda: NOW,
          files_dir=blocker).handle_line("metrics support.reply chart")
    assert f"⚠️ could not write the chart to {blocker / 'support.reply-1h.png'}" in out.getvalue()
