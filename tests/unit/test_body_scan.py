"""The whole-body scan that lets batch parsing skip the metadata walk (`bounds.body_is_plain`):
it may raise a false alarm, never miss a value `json_problem` refuses."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings, strategies as st
from pydantic import TypeAdapter

from llm_incident.bounds import body_is_plain, json_problem
from llm_incident.events.ingest import parse_valid_batch

_ANY = TypeAdapter(Any)
_leaves = (st.none() | st.booleans() | st.integers() | st.text()
           | st.floats(allow_nan=True, allow_infinity=True))
_values = st.recursive(_leaves, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(_values)
def test_a_plain_body_parses_to_values_json_problem_accepts(value):
    body = json.dumps({"metadata": value}).encode()   # NaN and Infinity as their literals
    if not body_is_plain(body):
        return
    parsed = _ANY.validate_json(body)
    assert json_problem(parsed) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.sampled_from(["\\u0000", "NaN", "-Infinity", "1e999", "1E+400",
                                               "9" * 320 + ".0"]))
def test_every_way_poison_reaches_a_parsed_value_is_seen(prefix, poison):
    literal = poison if not poison.startswith("\\") else f'"{poison}"'
    body = f'{{"metadata": {{"k": [{json.dumps(prefix)}, {literal}]}}}}'.encode()
    assert not body_is_plain(body)
    parsed = _ANY.validate_json(body)
    assert json_problem(parsed) is not None    # what the scan's False sends to the full check


def test_a_batch_with_poison_in_metadata_is_not_taken_whole():
    good = {"route": "r", "metadata": {"n": 1.5e10, "tenant": "acme"}}
    bad = {"route": "r", "metadata": {"x": math.inf}}
    assert parse_valid_batch(json.dumps([good, good]).encode()) is not None
    assert parse_valid_batch(json.dumps([good, bad]).encode()) is None  # the per-item path
