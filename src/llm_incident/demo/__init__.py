"""`llm-incident demo`: seeded history (`seed`), the scenarios (`traffic`), a live simulated LLM
app on our SDK (`live`) and the demo's faster clock (`clock`)."""

from llm_incident.demo.seed import INCIDENT_MINUTES, seed_demo, synthetic_events
from llm_incident.demo.traffic import SCENARIO_ROUTE, SCENARIOS

__all__ = ["INCIDENT_MINUTES", "SCENARIOS", "SCENARIO_ROUTE", "seed_demo", "synthetic_events"]
