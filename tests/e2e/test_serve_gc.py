"""The garbage collector of a real `llm-incident serve` under ingest: start-up objects frozen and
young collections rare, so batches of 1,000 events do not pay for collecting every 700 objects."""

from __future__ import annotations

import json
import re

import httpx

from tests.serverprocess import served
from tests.support import free_port

KEY = "gc-key-0123456789abcdef"
BATCHES, PER_BATCH = 20, 1000


def collections(text: str, generation: int) -> float:
    match = re.search(rf'^python_gc_collections_total{{generation="{generation}"}} (\S+)$', text, re.M)
    assert match, "python_gc_collections_total is not in /metrics"
    return float(match.group(1))


def test_ingest_of_20000_events_runs_few_young_collections(tmp_path):
    events = [{"route": f"gc.route.{i % 20}", "tokens_in": 1000 + i, "tokens_out": 200,
               "duration_ms": 512.5, "metadata": {"tenant": f"t{i % 7}"},
               "output_excerpt": "The answer is 42. Contact support@example.com for more."}
              for i in range(BATCHES * PER_BATCH)]
    with served(tmp_path, f"sqlite:///{tmp_path / 'gc.db'}", free_port(), api_key=KEY,
                LLM_INCIDENT_SCHEDULER="false") as server, \
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"},
                         timeout=60) as client:
        before = client.get("/metrics").text
        for i in range(0, len(events), PER_BATCH):
            answer = client.post("/v1/events", content=json.dumps(events[i:i + PER_BATCH]),
                                 headers={"Content-Type": "application/json"})
            assert answer.json()["accepted"] == PER_BATCH
        after = client.get("/metrics").text
    young = collections(after, 0) - collections(before, 0)
    full = collections(after, 2) - collections(before, 2)
    # with Python's default threshold (700) the same ingest runs ~190 young collections
    assert young < 40, young
    assert full <= 1, full
