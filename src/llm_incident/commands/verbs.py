"""The `/llm-incident` verbs: usage line and what each does (parse errors and `help` read it)."""

from __future__ import annotations

# verb → (usage, what it does); `help` lists them in this order.
VERBS: dict[str, tuple[str, str]] = {
    "start": ("start [routes…] [quality|latency|cost|provider] [since <when>] [symptom]",
              "open an incident (no arguments: a form); `since 19:37` / `since 30m` says when it "
              "began, else the onset is detected"),
    "triage": ("triage <route> [since <when>]",
               "onset, blast radius, attribution, likely cause and suggested mitigations now"),
    "status": ("status [#N] <text>", "post a status update to the incident thread"),
    "metrics": ("metrics <route> [window]",
                "baseline vs now for a route (window: 30m, 1h, 24h…); `metrics <route> chart "
                "[1h|6h|24h|7d|30d]` posts its flagged rate, p95 duration, p95 tokens_out and "
                "cost over the range as an image"),
    "kill": ("kill <route> [for <duration>]", "kill switch: the route answers its fallback message"),
    "restore": ("restore <route>", "undo every mitigation on the route (back to defaults)"),
    "clamp": ("clamp <route> <max_tokens>|off [for <duration>]", "cap output tokens"),
    "model": ("model <route> <model>|off [for <duration>]", "switch the route's model"),
    "provider": ("provider <route> <provider>|off [for <duration>]", "switch the route's provider"),
    "retries": ("retries <route> <cap>|off [for <duration>]", "cap retries (0 = fail fast)"),
    "controls": ("controls [route]", "show a route's controls with buttons (or every changed route)"),
    "attach": ("attach [#N] <event_id…> [good|bad|none] [note]",
               "attach events to the incident as evidence, optionally labelled"),
    "note": ("note [#N] <event_id> <text>", "add a note to an attached event"),
    "events": ("events <filter> [limit N]", "find events with the filter language"),
    "sample": ("sample <route> [n] [filter]", "post a random sample of the route's events to label"),
    "change": ("change <route> [deploy|prompt|model|config] <text>",
               "record a deploy, prompt or model change for a route (triage and postmortem)"),
    "alerts": ("alerts [start <alert id>]",
               "alert rules and what is firing; `start` opens an incident from an alert"),
    "routes": ("routes [1h|6h|24h|7d|30d]",
               "every route at a glance: calls, flagged rate, p95s, cost per hour vs before, "
               "controls, firing alerts, open incidents (the dashboard's overview)"),
    "list": ("list", "show open incidents"),
    "mitigated": ("mitigated [#N] [note]",
                  "mark the incident mitigated (the symptom is under control; not closed yet)"),
    "close": ("close [#N] [summary]", "close the incident and post its timeline"),
    "reopen": ("reopen [#N] [reason]",
               "reopen a closed incident (in its thread, or `#N`): its buttons act again"),
    "help": ("help", "this list"),
}
