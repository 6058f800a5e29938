"""Wake-ups for control long-polls: at once for changes committed in this process, within `recheck`
seconds for changes committed by another process or replica, and for good when the server shuts down.
No DB connection is held while waiting."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from llm_incident.controls.service import CHANGED_KEY, controls_fingerprint
from llm_incident.db import Database

log = logging.getLogger("llm_incident.api")
T = TypeVar("T")


class Subscription:
    """One waiter's wake-up flag, set from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.event = asyncio.Event()

    def wake(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self.event.set)
        except RuntimeError:  # its loop is closed: nobody is waiting any more
            pass

    async def wait(self, timeout: float) -> bool:
        """True when woken within `timeout` seconds; the flag is cleared either way."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self.event.clear()


class ControlsWatch:
    """Wakes subscribers when any route's controls may have changed.

    In-process changes arrive through `Database.commit_hooks` (attach/detach). For changes made elsewhere one
    task per process re-reads a cheap fingerprint (the sum of control versions) every `recheck` seconds while
    someone is waiting, whatever the number of waiters. Wake-ups are hints: waiters re-read their own state.
    Once `closing` is set (`close_waits`), every wait ends at once: the server is stopping.
    """

    def __init__(self, db: Database, *, recheck: float = 0.5) -> None:
        self.db = db
        self.recheck = recheck
        self._lock = threading.Lock()
        self._subs: set[Subscription] = set()
        self._poller: asyncio.Task[None] | None = None
        self._poller_loop: asyncio.AbstractEventLoop | None = None
        self.closing = False

    def attach(self) -> None:
        if self._on_commit not in self.db.commit_hooks:
            self.db.commit_hooks.append(self._on_commit)

    def detach(self) -> None:
        if self._on_commit in self.db.commit_hooks:
            self.db.commit_hooks.remove(self._on_commit)
        if self._poller is not None:
            self._poller.cancel()

    def _on_commit(self, session: Session) -> None:
        if session.info.get(CHANGED_KEY):
            self.notify()

    def notify(self) -> None:
        """Wake every subscriber (thread-safe)."""
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.wake()

    def close_waits(self) -> None:
        """End every wait now and any later one at once (the server is stopping)."""
        self.closing = True
        self.notify()

    @contextmanager
    def closed_by_shutdown_signals(self) -> Iterator[None]:
        """While inside, SIGTERM / SIGINT also end the waiting long-polls (they answer 304/200 at once).

        Servers such as uvicorn stop accepting on a signal and then wait for in-flight requests *before* the
        lifespan shutdown runs, so a long-poll would hold the exit up for its whole `wait` and then be
        cancelled (a 500). The handler already installed (the server's own) still runs. Only a Python-level
        handler is chained, and only from the main thread; elsewhere (a server in a thread) this is a no-op.
        """
        self.closing = False
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        loop = asyncio.get_running_loop()
        previous: dict[int, Callable] = {}

        def handler(signum: int, frame: object) -> None:
            try:  # no locks here: this interrupts the loop's own thread
                loop.call_soon_threadsafe(self.close_waits)
            except RuntimeError:  # the loop is closed
                pass
            previous[signum](signum, frame)

        for sig in (signal.SIGINT, signal.SIGTERM):
            current = signal.getsignal(sig)
            if callable(current):
                previous[sig] = current
                signal.signal(sig, handler)
        try:
            yield
        finally:
            for sig, old in previous.items():
                if signal.getsignal(sig) is handler:
                    signal.signal(sig, old)

    @contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        """Register a waiter in the running loop; subscribe *before* reading the state you compare against."""
        loop = asyncio.get_running_loop()
        sub = Subscription(loop)
        with self._lock:
            self._subs.add(sub)
        self._ensure_poller(loop)
        try:
            yield sub
        finally:
            with self._lock:
                self._subs.discard(sub)

    def _ensure_poller(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._poller is None or self._poller.done() or self._poller_loop is not loop:
            self._poller_loop = loop
            self._poller = loop.create_task(self._poll(), name="llm-incident-controls-watch")

    async def _poll(self) -> None:
        """Re-read the fingerprint while anyone waits; wake all on a difference (and once at the start, so a
        change made before the first reading is not missed)."""
        last: int | None = None
        while True:
            with self._lock:
                if not self._subs:
                    return
            try:
                current = await run_in_threadpool(self._fingerprint)
            except Exception as exc:  # noqa: BLE001 - a DB hiccup must not end the watch
                log.warning("controls watch: cannot read the fingerprint: %s", exc)
            else:
                if current != last:
                    last = current
                    self.notify()
            await asyncio.sleep(self.recheck)

    def _fingerprint(self) -> int:
        with self.db.read() as session:
            return controls_fingerprint(session)


async def wait_until(
    watch: ControlsWatch, read: Callable[[], T], changed: Callable[[T], bool], seconds: float,
    clock: Callable[[], float],
) -> tuple[T, bool]:
    """Read (in a worker thread) until `changed(state)`, `seconds` pass or the watch closes; (last state,
    changed?)."""
    deadline = clock() + seconds
    with watch.subscribe() as sub:
        while True:
            state = await run_in_threadpool(read)
            if changed(state):
                return state, True
            remaining = deadline - clock()
            if remaining <= 0 or watch.closing:
                return state, False
            await sub.wait(remaining)
