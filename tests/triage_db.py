"""A generated triage scenario stored in a test database (tests/triage_scenarios.py)."""

from __future__ import annotations

from tests.triage_scenarios import Scenario, generate, insert_scenario


def seeded(db, kind: str, rate: int = 30, seed: int = 0) -> tuple[Scenario, int | None]:
    """Generate the scenario, store its events and change log; (scenario, the cause's id)."""
    scenario = generate(kind, rate, seed)
    with db.write() as session:
        cause_id = insert_scenario(session, scenario)
    return scenario, cause_id
