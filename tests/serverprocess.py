"""`llm-incident serve` as a real child process: start it on a port, stop it with a signal, read its log.

Plain module (no pytest) so the benches can use it too. The log goes to a file, so a chatty server never
blocks on a full pipe.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

EXE = shutil.which("llm-incident") or str(Path(sys.executable).parent / "llm-incident")


@dataclass
class ServerProcess:
    """One `llm-incident serve` child; `url` is its base URL."""

    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> float:
        """Send `sig`, wait for the exit; seconds it took (the process is killed if it outlives `timeout`)."""
        if self.proc.poll() is not None:
            return 0.0
        start = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        return time.monotonic() - start


def start_server(workdir: Path, database_url: str, port: int, *, api_key: str, name: str = "serve",
                 startup_timeout: float = 60.0, **extra_env: str) -> ServerProcess:
    """Start `llm-incident serve --port PORT` (Slack off unless `extra_env` turns it on); return once
    `/healthz` answers. RuntimeError, with the log, when it exits or does not answer in time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_INCIDENT_", "SLACK_"))}
    env.update(LLM_INCIDENT_DATABASE_URL=database_url, LLM_INCIDENT_API_KEYS=api_key, **extra_env)
    log = workdir / f"{name}-{port}-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([EXE, "serve", "--port", str(port)], env=env, cwd=workdir,
                                stdout=out, stderr=subprocess.STDOUT)
    server = ServerProcess(proc, port, log)
    deadline = time.monotonic() + startup_timeout
    while True:
        try:
            httpx.get(f"{server.url}/healthz", timeout=2)
            return server
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                server.stop(signal.SIGKILL)
                raise RuntimeError(f"server on port {port} did not start:\n{server.output()[-3000:]}") from None
            time.sleep(0.05)


@contextmanager
def served(workdir: Path, database_url: str, port: int, *, api_key: str, **extra_env: str
           ) -> Iterator[ServerProcess]:
    """`start_server`, stopped with SIGTERM on the way out (if still running)."""
    server = start_server(workdir, database_url, port, api_key=api_key, **extra_env)
    try:
        yield server
    finally:
        server.stop()


class DroppingPort:
    """Listens on `port` and closes every connection at once, counting them: a server that is down.

    Lets a test keep a control plane down for a given number of client attempts, with no sleep.
    """

    def __init__(self, port: int) -> None:
        self.port, self.attempts = port, 0
        self._cond, self._stop = threading.Condition(), threading.Event()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(64)
        self._sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._run, name="dropping-port", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.close()
            with self._cond:
                self.attempts += 1
                self._cond.notify_all()

    def wait_for_attempts(self, count: int, within: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.attempts >= count, within)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
