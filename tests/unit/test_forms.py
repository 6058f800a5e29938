"""The attach form's pre-filled ids fit its text field; the rest are counted, never cut."""

from __future__ import annotations

from llm_incident.commands.forms import FORM_TEXT_MAX, prefill_ids


def test_prefill_keeps_whole_ids_within_the_limit_and_counts_the_rest():
    ids = [f"{n:032x}" for n in range(150)]
    text, left = prefill_ids(ids)
    kept = text.split()
    assert len(text) <= FORM_TEXT_MAX and kept == ids[:len(kept)] and left == 150 - len(kept)
    assert len(text) + 33 > FORM_TEXT_MAX  # as many as fit: one more would not


def test_prefill_of_few_ids_keeps_them_all_and_an_overlong_id_is_left_out():
    assert prefill_ids(["a", "b"]) == ("a b", 0)
    assert prefill_ids(["x" * (FORM_TEXT_MAX + 1), "short"]) == ("", 2)
    assert prefill_ids([]) == ("", 0)
