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


_numbers = st.builds(
    lambda whole, fraction, exp_mark, exp_sign, exp_digits: (
        whole + (f".{fraction}" if fraction else "")
        + (f"{exp_mark}{exp_sign}{exp_digits}" if exp_mark else "")),
    st.from_regex(r"\A-?(0|[1-9][0-9]{0,399})\Z"), st.from_regex(r"\A[0-9]{0,20}\Z"),
    st.sampled_from(["", "e", "E"]), st.sampled_from(["", "+", "-"]),
    st.from_regex(r"\A[0-9]{1,5}\Z"))


@settings(max_examples=600, deadline=None)
@given(_numbers | st.sampled_from(["1" + "0" * 250 + "e99", "9" * 210 + ".5E+99", "1e0400",
                                   "17976931348623159" + "0" * 292]))
def test_every_number_that_overflows_to_infinity_is_seen(literal):
    body = f'{{"metadata": {{"n": {literal}}}}}'.encode()
    parsed = _ANY.validate_json(body)["metadata"]["n"]
    if isinstance(parsed, float) and math.isinf(parsed):
        assert not body_is_plain(body), literal


def test_a_batch_with_poison_in_metadata_is_not_taken_whole():
    good = {"route": "r", "metadata": {"n": 1.5e10, "tenant": "acme"}}
    bad = {"route": "r", "metadata": {"x": math.inf}}
    assert parse_valid_batch(json.dumps([good, good]).encode()) is not None
    assert parse_valid_batch(json.dumps([good, bad]).encode()) is None  # the per-item path
