"""Excerpt redaction/truncation and the price table fast path."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from genai_prices import Usage, calc_price

from llm_incident.events.pricing import cost_usd
from llm_incident.events.redact import excerpt, redact

NOW = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to ana.lopez+ops@corp.example.org now", "write to [email] now"),
        ("call +1 415-555-0100 today", "call [phone] today"),
        ("call (415) 555 0100", "call [phone]"),
        ("card 4111 1111 1111 1111 ok", "card [card] ok"),
        ("token sk-proj-abcdefghijklmnop1234 end", "token [secret] end"),
        ("slack xoxb-123456789012-abcdefghij", "slack [secret]"),
        ("aws AKIAIOSFODNN7EXAMPLE", "aws [secret]"),
        ("blob a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8 tail", "blob [secret] tail"),
    ],
)
def test_redaction(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    ["order 12345 shipped", "version 2.14.1", "id 550e8400-e29b-41d4-a716-446655440000",
     "number 1234 5678 9012 3456 fails luhn", "costs $0.004 per call"],
)
def test_ordinary_text_is_kept(text):
    assert redact(text) == text


def test_excerpt_truncates_after_redaction():
    assert excerpt(None, 10) is None
    assert excerpt("a@b.co " + "z" * 50, 12) == "[email] zzz…"
    assert len(excerpt("x" * 5000, 2000)) == 2000


@pytest.mark.parametrize(
    ("model", "provider"),
    [("gpt-4o", "openai"), ("gpt-4o-mini", None), ("claude-sonnet-4-5", "anthropic"),
     ("claude-3-5-haiku-latest", "anthropic"), ("gemini-2.5-pro", "google")],
)
def test_cost_matches_the_library(model, provider):
    for tin, tout in [(0, 0), (1000, 200), (150_000, 4000), (300_000, 10)]:
        expected = calc_price(Usage(input_tokens=tin, output_tokens=tout), model_ref=model,
                              provider_id=provider, genai_request_timestamp=NOW).total_price
        assert cost_usd(model, provider, tin, tout, NOW) == pytest.approx(float(expected), rel=1e-12)


def test_unknown_model_or_missing_tokens_is_unpriced_not_zero():
    assert cost_usd("our-finetune-v7", "acme", 100, 100, NOW) is None
    assert cost_usd(None, "openai", 100, 100, NOW) is None
    assert cost_usd("gpt-4o", "openai", None, None, NOW) is None


def test_provider_spelled_differently_still_prices_by_model():
    assert cost_usd("gpt-4o", "openai-azure-typo", 1000, 0, NOW) == cost_usd("gpt-4o", None, 1000, 0, NOW)

