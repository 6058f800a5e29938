"""Scopes of API keys: parsing `LLM_INCIDENT_API_KEYS`, `--scope` values, and the deprecation warning."""

from __future__ import annotations

import logging

import pytest

from llm_incident.apikeys import ALL_SCOPES, hash_key, parse_bootstrap, parse_scopes, split_entry
from llm_incident.settings import SettingsError, load_settings


def test_entries_name_their_scopes_and_a_bare_key_holds_all():
    assert split_entry("ingest:k1") == (frozenset({"ingest"}), "k1")
    assert split_entry("read+controls:k2") == (frozenset({"read", "controls"}), "k2")
    assert split_entry("bare-key") == (None, "bare-key")


def test_an_unknown_scope_or_a_missing_key_is_refused_without_echoing_the_key():
    with pytest.raises(ValueError, match="unknown scope 'injest'") as caught:
        split_entry("injest:secret-123")
    assert "secret-123" not in str(caught.value)
    with pytest.raises(ValueError, match="no key after the scope"):
        split_entry("read:")
    with pytest.raises(SettingsError, match="injest"):
        load_settings(_env_file=None, api_keys="read:k1,injest:k2")


def test_settings_keep_the_entries_for_the_key_checker():
    assert load_settings(_env_file=None, api_keys="ingest:k1, read:k2").api_keys == ["ingest:k1", "read:k2"]


def test_bootstrap_keys_are_named_by_position_and_bare_ones_warn_once(caplog):
    with caplog.at_level(logging.WARNING, logger="llm_incident.apikeys"):
        keys = parse_bootstrap(["ingest:k1", "k2", "k3"])
    assert keys[hash_key("k1")].name == "env-key-1" and keys[hash_key("k1")].scopes == {"ingest"}
    assert keys[hash_key("k2")].scopes == ALL_SCOPES and keys[hash_key("k3")].name == "env-key-3"
    warnings = [r for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(warnings) == 1 and "2 key(s)" in warnings[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="llm_incident.apikeys"):
        parse_bootstrap(["read:k1"])
    assert caplog.records == []


def test_scope_values_accept_commas_and_repeats():
    assert parse_scopes(["ingest,read", "controls"]) == {"ingest", "read", "controls"}
    with pytest.raises(ValueError, match="at least one scope"):
        parse_scopes([""])
