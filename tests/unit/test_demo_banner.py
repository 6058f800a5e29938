"""The demo's banner: this scenario's hints, and nothing that is not running in this mode."""

from pathlib import Path

import pytest

from llm_incident.demo.banner import banner, start_command
from llm_incident.demo.traffic import SCENARIO_ROUTE, SCENARIOS


def text(scenario: str, mode: str, speed: float = 1) -> str:
    return banner(scenario=scenario, mode=mode, db_file=Path("/x/demo.db"), events=10,
                  key="lli_k", base="http://127.0.0.1:8000", speed=speed,
                  log_file=Path("/x/demo.log"))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_mode_names_this_scenarios_route_and_start_line(scenario):
    others = set(SCENARIO_ROUTE.values()) - {SCENARIO_ROUTE[scenario]}
    for mode in ("console", "serve", "seed"):
        shown = text(scenario, mode)
        assert start_command(scenario) in shown
        assert not any(f"start {route}" in shown for route in others)


def test_the_console_mode_gives_the_tour_and_the_log_file():
    shown = text("token-explosion", "console", speed=10)
    assert "console below" in shown and "/x/demo.log" in shown and "10× as fast" in shown
    assert "press the clamp's number" in shown


def test_seeding_only_promises_no_server_and_no_console():
    shown = text("latency-spike", "seed")
    assert "curl" not in shown and "console below" not in shown and "simulated app keeps" not in shown
    assert "llm-incident shell" in shown and "llm-incident serve" in shown and "lli_k" in shown


def test_serving_only_says_how_to_reach_the_console():
    shown = text("provider-429", "serve")
    assert "console below" not in shown and "llm-incident shell" in shown and "curl" in shown
