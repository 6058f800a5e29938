"""What `llm-incident demo` prints first: where things are, and the tour for this scenario and
mode (a console below, a server only, or seeded data only)."""

from __future__ import annotations

from pathlib import Path

from llm_incident.demo.traffic import SCENARIO_ROUTE, SCENARIOS

CLASS = {"token-explosion": "cost", "latency-spike": "latency", "provider-429": "provider",
         "quality-regression": "quality"}
SYMPTOM = {"token-explosion": "tokens exploding", "latency-spike": "answers slow",
           "provider-429": "429s from openai", "quality-regression": "bad answers flagged"}
MITIGATION = {"token-explosion": "the clamp", "latency-spike": "the model switch",
              "provider-429": "the provider switch or the retry cap",
              "quality-regression": "the kill switch"}


def start_command(scenario: str) -> str:
    """The `start` line that opens this scenario's incident by hand."""
    return f"start {SCENARIO_ROUTE[scenario]} {CLASS[scenario]} {SYMPTOM[scenario]}"


def banner(*, scenario: str, mode: str, db_file: Path, events: int, key: str, base: str,
           speed: float, log_file: Path) -> str:
    """`mode`: "console" (the console runs below), "serve" (server only) or "seed" (no server)."""
    route = SCENARIO_ROUTE[scenario]
    pace = "" if speed == 1 else f", the clock runs {speed:g}× as fast"
    lines = ["", "llm-incident demo",
             f"  scenario : {scenario} — {SCENARIOS[scenario]}",
             f"  database : {db_file} ({events} events over the last 3 hours)",
             f"  API key  : {key}"]
    if mode == "seed":
        url = f"sqlite:///{db_file}"
        return "\n".join([*lines, "",
                          "Seeded only (--no-serve): no server and no simulated app are running.",
                          f"  console : LLM_INCIDENT_DATABASE_URL={url} llm-incident shell",
                          f"  server  : LLM_INCIDENT_DATABASE_URL={url} llm-incident serve",
                          f"  then    : {start_command(scenario)}", ""])
    lines += [f"  live     : a simulated app keeps calling the routes and obeys their controls{pace}",
              f"  API docs : {base}/docs   health: {base}/healthz",
              ""]
    if mode == "console":
        lines += [f"  log      : {log_file}", "",
                  "The tour, in the console below:",
                  f"  1. an alert on {route} prints within a minute: type its Start button's number",
                  "  2. the Triage message names the cause and suggests mitigations: press "
                  f"{MITIGATION[scenario]}'s number",
                  "  3. a few minutes later \"did it work?\" shows the route recovering",
                  "  4. `close`, then `postmortem` prints the draft (before / during / after)",
                  f"  (or open the incident yourself: {start_command(scenario)})", ""]
    else:
        lines += ["The server runs in the foreground (Ctrl-C stops it). From another terminal:",
                  f"  LLM_INCIDENT_DATABASE_URL=sqlite:///{db_file} llm-incident shell",
                  f"  (in it, alerts print as they fire; or type: {start_command(scenario)})",
                  f"  curl -H 'Authorization: Bearer {key}' '{base}/v1/routes/{route}/triage'", ""]
    lines += ["Try the API meanwhile:",
              f"  curl -H 'Authorization: Bearer {key}' '{base}/v1/routes/{route}/metrics'", ""]
    return "\n".join(lines)
