"""The OpenFeature provider, evaluated through the real openfeature-sdk client against the running server."""

from __future__ import annotations

import time

import pytest
from openfeature import api as openfeature
from openfeature.exception import ErrorCode, ProviderNotReadyError
from openfeature.flag_evaluation import Reason

from llm_incident_client import Controls
from llm_incident_client.openfeature import ControlsProvider
from tests.support import TEST_KEY, free_port

ROUTE = "support.reply"


@pytest.fixture
def flags(server, api):
    """An OpenFeature client whose provider reads a Controls cache of the running server."""
    api.put(f"/v1/routes/{ROUTE}/controls",
            json={"enabled": False, "max_tokens": 300, "model": "small", "retry_cap": 2})
    controls = Controls(server, TEST_KEY, wait=2)
    openfeature.set_provider_and_wait(ControlsProvider(controls))
    try:
        yield openfeature.get_client()
    finally:
        openfeature.shutdown()
        controls.close()


def test_route_flags_resolve_from_the_controls(flags):
    details = flags.get_boolean_details(f"{ROUTE}.enabled", True)
    assert details.value is False and details.reason == Reason.CACHED and details.error_code is None
    assert details.flag_metadata == {"version": 1}
    assert flags.get_integer_value(f"{ROUTE}.max_tokens", 4096) == 300
    assert flags.get_float_value(f"{ROUTE}.max_tokens", 4096.0) == 300.0
    assert flags.get_string_value(f"{ROUTE}.model", "big") == "small"
    assert flags.get_integer_value(f"{ROUTE}.retry_cap", 5) == 2
    assert flags.get_object_value(f"{ROUTE}.controls", {})["max_tokens"] == 300


def test_a_control_without_override_gives_the_callers_default(flags):
    details = flags.get_string_details(f"{ROUTE}.provider", "openai")
    assert (details.value, details.reason, details.error_code) == ("openai", Reason.DEFAULT, None)
    assert flags.get_boolean_value("other.route.enabled", False) is True  # no controls: enabled


def test_unknown_flags_and_wrong_types_return_the_default_with_an_error(flags):
    missing = flags.get_integer_details(f"{ROUTE}.colour", 7)
    assert (missing.value, missing.error_code) == (7, ErrorCode.FLAG_NOT_FOUND)
    assert flags.get_boolean_details("noroute", True).error_code == ErrorCode.FLAG_NOT_FOUND
    mismatch = flags.get_integer_details(f"{ROUTE}.model", 7)
    assert (mismatch.value, mismatch.error_code) == (7, ErrorCode.TYPE_MISMATCH)
    assert flags.get_integer_details(f"{ROUTE}.enabled", 1).error_code == ErrorCode.TYPE_MISMATCH


def test_a_flip_reaches_the_flag(flags, api):
    api.put(f"/v1/routes/{ROUTE}/controls", json={"enabled": True})
    deadline = time.monotonic() + 2
    while not flags.get_boolean_value(f"{ROUTE}.enabled", False):
        assert time.monotonic() < deadline, "flip not seen within 2 s"
        time.sleep(0.01)


def test_a_server_never_reached_fails_initialize_yet_flags_fail_open_with_reason_default():
    controls = Controls(f"http://127.0.0.1:{free_port()}", "k", max_retry_backoff=0.1)
    with pytest.raises(ProviderNotReadyError):  # status ERROR; PROVIDER_READY follows a first load
        openfeature.set_provider_and_wait(ControlsProvider(controls, ready_timeout=0.1))
    try:
        details = openfeature.get_client().get_boolean_details(f"{ROUTE}.enabled", False)
        assert (details.value, details.reason) == (True, Reason.DEFAULT)
    finally:
        openfeature.shutdown()
        controls.close()
