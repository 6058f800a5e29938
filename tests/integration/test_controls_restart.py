"""The app-side client across a control-plane restart: `llm-incident serve` stopped, a new one started on the
same port and database, a kill switch flipped right after — `Controls` and the OpenFeature provider see it
within the reconnect schedule's longest pause, and the provider's events tell each change of state."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from openfeature import api as openfeature
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ProviderNotReadyError
from openfeature.flag_evaluation import Reason
from openfeature.provider import ProviderStatus

from llm_incident_client import Controls
from llm_incident_client.openfeature import ControlsProvider
from llm_incident_client.transport import RECONNECT_DELAYS
from llm_incident.db import Database
from tests.integration.test_controls_client import eventually
from tests.serverprocess import DroppingPort, ServerProcess, start_server
from tests.support import TEST_KEY, free_port

ROUTE = "support.reply"
RECONNECT_CAP = 1.0  # Controls' default max_reconnect_delay
ROUND_TRIP = 1.0  # one request to a server that just started, on a busy CI machine
BOUND = max(*RECONNECT_DELAYS, RECONNECT_CAP) + ROUND_TRIP  # the client's longest pause, then one answer
OUTAGE_ATTEMPTS = len(RECONNECT_DELAYS) + 2  # deep enough into the schedule to reach its cap

pytestmark = pytest.mark.timeout(120)


def flip(server: ServerProcess, **values: object) -> float:
    """PUT the values on `server`; the monotonic time it was sent."""
    sent = time.monotonic()
    response = httpx.put(f"{server.url}/v1/routes/{ROUTE}/controls", json=values, timeout=10,
                         headers={"Authorization": f"Bearer {TEST_KEY}"})
    assert response.status_code == 200, response.text
    return sent


@contextmanager
def servers(tmp_path: Path, db: Database) -> Iterator[Callable[[], ServerProcess]]:
    """`start()` starts `llm-incident serve` on one fixed port and database; all are stopped at the end."""
    port, started = free_port(), []

    def start() -> ServerProcess:
        started.append(start_server(tmp_path, db.url, port, api_key=TEST_KEY))
        return started[-1]

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def outage(port: int, attempts: int = OUTAGE_ATTEMPTS) -> None:
    """Keep `port` down (connections dropped) until the client has tried `attempts` times."""
    down = DroppingPort(port)
    try:
        assert down.wait_for_attempts(attempts, within=60), f"{down.attempts} attempts in 60 s"
    finally:
        down.close()


class Events:
    """Provider events received through `client.add_handler`, in order."""

    def __init__(self, client) -> None:
        self.client, self.seen, self.cond = client, [], threading.Condition()
        self.handlers = {kind: self._handler(kind) for kind in ProviderEvent}
        for kind, handler in self.handlers.items():
            client.add_handler(kind, handler)

    def _handler(self, kind: ProviderEvent) -> Callable[[EventDetails], None]:
        def on(details: EventDetails) -> None:
            with self.cond:
                self.seen.append((kind, details))
                self.cond.notify_all()
        return on

    def mark(self) -> int:
        with self.cond:
            return len(self.seen)

    def wait_for(self, kind: ProviderEvent, *, after: int = 0, within: float = 10.0,
                 where: Callable[[EventDetails], bool] = lambda _d: True) -> EventDetails:
        """The first `kind` event (matching `where`) received after `mark()` was `after`."""
        def found() -> EventDetails | None:
            return next((d for k, d in self.seen[after:] if k == kind and where(d)), None)

        with self.cond:
            details = self.cond.wait_for(found, within)
        assert details is not None, f"no {kind.value} within {within} s; got {[k.value for k, _ in self.seen]}"
        return details

    def close(self) -> None:
        for kind, handler in self.handlers.items():
            self.client.remove_handler(kind, handler)


def test_a_flip_right_after_a_restart_reaches_guard_within_the_reconnect_bound(tmp_path, db):
    with servers(tmp_path, db) as start:
        first = start()
        with Controls(first.url, TEST_KEY, wait=25) as controls:
            assert controls.wait_ready(10) and controls.guard(ROUTE).allowed
            assert first.stop() < 2.0
            eventually(lambda: controls.stale, within=5)
            outage(first.port)
            second = start()  # same port, same database: answering from here on
            sent = flip(second, enabled=False, fallback_message="Back soon.")
            eventually(lambda: not controls.guard(ROUTE).allowed, within=30)
            took = time.monotonic() - sent
            assert took <= BOUND, f"flip seen {took:.2f} s after the restart (bound {BOUND:.1f} s)"
            assert not controls.stale and controls.guard(ROUTE).fallback_message == "Back soon."


def test_the_provider_goes_stale_in_an_outage_and_ready_with_the_change_after_it(tmp_path, sqlite_db):
    db = sqlite_db
    with servers(tmp_path, db) as start:
        first = start()
        controls = Controls(first.url, TEST_KEY, wait=25)
        openfeature.set_provider_and_wait(ControlsProvider(controls))
        flags = openfeature.get_client()
        events = Events(flags)
        try:
            events.wait_for(ProviderEvent.PROVIDER_READY)  # run at once for a provider already ready
            assert flags.get_boolean_details(f"{ROUTE}.enabled", False).reason == Reason.CACHED
            before = events.mark()
            first.stop()
            stale = events.wait_for(ProviderEvent.PROVIDER_STALE, after=before, within=5)
            assert "cannot reach" in (stale.message or "")
            assert flags.get_provider_status() == ProviderStatus.STALE
            details = flags.get_boolean_details(f"{ROUTE}.enabled", False)
            assert (details.value, details.reason) == (True, Reason.STALE)  # the last known value
            outage(first.port)
            second = start()
            restarted = events.mark()
            sent = flip(second, enabled=False, max_tokens=100)
            events.wait_for(ProviderEvent.PROVIDER_READY, after=restarted, within=30)
            changed = events.wait_for(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, after=restarted, within=30)
            took = time.monotonic() - sent
            assert took <= BOUND, f"change reported {took:.2f} s after the restart (bound {BOUND:.1f} s)"
            assert set(changed.flags_changed or []) == {f"{ROUTE}.enabled", f"{ROUTE}.max_tokens",
                                                        f"{ROUTE}.controls"}
            assert flags.get_provider_status() == ProviderStatus.READY
            details = flags.get_boolean_details(f"{ROUTE}.enabled", True)
            assert (details.value, details.reason) == (False, Reason.CACHED)
            kinds = [k for k, _ in events.seen[before:]]
            assert ProviderEvent.PROVIDER_ERROR not in kinds  # values were cached all along: stale, not error
        finally:
            events.close()
            openfeature.shutdown()
            controls.close()


def test_a_server_never_reached_is_an_error_until_the_first_load_then_ready(tmp_path, sqlite_db):
    db = sqlite_db
    port = free_port()
    controls = Controls(f"http://127.0.0.1:{port}", TEST_KEY, wait=25)
    with pytest.raises(ProviderNotReadyError, match="cannot reach"):
        openfeature.set_provider_and_wait(ControlsProvider(controls, ready_timeout=0.2))
    flags = openfeature.get_client()
    events = Events(flags)
    try:
        error = events.wait_for(ProviderEvent.PROVIDER_ERROR)
        assert flags.get_provider_status() == ProviderStatus.ERROR, error
        details = flags.get_boolean_details(f"{ROUTE}.enabled", False)
        assert (details.value, details.reason) == (True, Reason.DEFAULT)  # fails open, still resolves
        before = events.mark()
        server = start_server(tmp_path, db.url, port, api_key=TEST_KEY)
        try:
            events.wait_for(ProviderEvent.PROVIDER_READY, after=before, within=BOUND)
            assert flags.get_provider_status() == ProviderStatus.READY
            assert flags.get_boolean_details(f"{ROUTE}.enabled", False).reason == Reason.CACHED
        finally:
            server.stop()
    finally:
        events.close()
        openfeature.shutdown()
        controls.close()
