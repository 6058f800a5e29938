"""A local fake of the Slack Web API over real HTTP, recording every call.

    with FakeSlack() as slack:
        settings_for(db, slack_api_url=slack.api_url, ...)
        slack.fail("chat.postMessage", times=2, status=429, retry_after=1)
        slack.wait_for(lambda: len(slack.posts()) >= 3)

`response_url(name)` gives a URL on the fake whose posts are recorded too (`responses()`).
File uploads work as in Slack: files.getUploadURLExternal hands out an upload URL on the fake, the
raw POST to it is recorded with its bytes, files.completeUploadExternal shares the file
(`uploads()`). canvases.create succeeds unless `canvases_allowed` is False (then it answers
`team_tier_cannot_create_channel_canvases`, as on a free workspace).

Every message and view it receives is judged by tests/blockkit.py (slack_sdk's Block Kit models
plus Slack's documented limits): an invalid one is refused as Slack would (`invalid_blocks` /
`invalid_arguments`, HTTP 400 on a response_url) and the test fails when the fake closes, unless
it set `expect_invalid`. `invalid` lists what was refused. apps.connections.open hands
out `socket_url` (a Socket Mode websocket, tests/fakesocket.py) with a new `?ticket=N` each time.

conversations.replies / conversations.history answer from the posts recorded (with their
`metadata` when `include_all_metadata` is set) and the file shares (a message with `files`);
`oldest`/`latest` are recorded but not applied (the fake's ts are not wall-clock times).
`outage("error", status=500 | 429, retry_after=…)` / `outage("hang")` makes every call fail or
hang until `outage(None)`; `expired_responses` holds response_url names that answer 404.
`hang(method, when=…)` makes a call reach Slack and lose its answer: the next matching call is
done and recorded as usual, then the fake holds the connection (`hanging(method)` counts them)
until `release()` (or the fake closes) and drops it unanswered: a crash or a timeout mid-call.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from tests.blockkit import VIEW_METHODS, call_problems, message_problems

JSON_ARGS = ("blocks", "view", "attachments", "metadata", "files")
BOT_USER = "UBOT0001"


@dataclass
class Call:
    """One request to the fake: an API method call or a response_url post."""

    method: str
    args: dict[str, Any]
    status: int = 200
    token: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.args.get("_failed")


@dataclass
class Failure:
    times: int
    status: int = 500
    retry_after: int | None = None
    error: str | None = None


class FakeSlack:
    """The fake server; thread-safe; use as a context manager."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._responses: list[Call] = []
        self._failures: dict[str, list[Failure]] = {}
        self._ts = itertools.count(1)
        self._views = itertools.count(1)
        self.usergroups: dict[str, list[str]] = {}  # answers usergroups.users.list
        self.canvases_allowed = True
        self.permalink: str | None = "default"  # None: chat.getPermalink answers ok without one
        self.invalid: list[str] = []  # payloads refused by tests/blockkit.py
        self.expect_invalid = False  # a test that sends invalid payloads on purpose sets it
        self.socket_url: str | None = None  # what apps.connections.open hands out
        self._tickets = itertools.count(1)
        self._files: dict[str, dict[str, Any]] = {}  # file id → filename, bytes, where shared
        self._file_ids = itertools.count(1)
        self._shares: list[dict[str, Any]] = []  # file-share messages (conversations.*)
        self._hangs: list[tuple[str, Callable[[dict[str, Any]], bool]]] = []
        self._hanging: dict[str, int] = {}
        self._released = threading.Event()
        self._outage: tuple[str, int, int | None] | None = None  # see outage()
        self._outage_over = threading.Event()
        self.expired_responses: set[str] = set()  # response_url names that answer 404 (expired)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.api_url = f"{self.url}/api/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeSlack:
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.release()
        self._outage_over.set()
        self.server.shutdown()
        self.server.server_close()
        if self.invalid and not self.expect_invalid and exc_type is None:
            raise AssertionError("Slack would refuse these payloads:\n" + "\n".join(self.invalid))

    # -- control ------------------------------------------------------------------------------

    def fail(self, method: str, *, times: int = 1, status: int = 500,
             retry_after: int | None = None, error: str | None = None) -> None:
        """The next `times` calls of `method` fail: HTTP `status` (429 with Retry-After), or
        HTTP 200 with `{"ok": false, "error": error}` when `error` is given."""
        with self._lock:
            self._failures.setdefault(method, []).append(
                Failure(times=times, status=200 if error else status, retry_after=retry_after,
                        error=error))

    def outage(self, mode: str | None, *, status: int = 500, retry_after: int | None = None) -> None:
        """Every call (API and response_url) until `outage(None)`: "error" answers `status` (429
        with `retry_after`), "hang" holds the request unanswered until the outage ends."""
        with self._lock:
            self._outage = (mode, status, retry_after) if mode else None
        if mode:
            self._outage_over.clear()
        else:
            self._outage_over.set()

    def hang(self, method: str, *, when: Callable[[dict[str, Any]], bool] | None = None) -> None:
        """The next call of `method` whose arguments satisfy `when` is done, then never
        answered (held until `release()`, then the connection is dropped)."""
        with self._lock:
            self._hangs.append((method, when or (lambda _args: True)))

    def hanging(self, method: str | None = None) -> int:
        """Calls held by `hang` right now."""
        with self._lock:
            return sum(n for m, n in self._hanging.items() if method in (None, m))

    def release(self) -> None:
        """Let every held call go (its connection is dropped); later hangs hold again."""
        with self._lock:
            released, self._released = self._released, threading.Event()
        released.set()

    def heal(self) -> None:
        with self._lock:
            self._failures.clear()

    def response_url(self, name: str = "r") -> str:
        return f"{self.url}/response/{name}"

    # -- inspection ---------------------------------------------------------------------------

    def calls(self, method: str | None = None, *, ok_only: bool = True) -> list[Call]:
        with self._lock:
            return [c for c in self._calls
                    if (method is None or c.method == method) and (c.ok or not ok_only)]

    def posts(self, **where: Any) -> list[dict[str, Any]]:
        """Successful chat.postMessage calls matching `where` (e.g. thread_ts=…): their
        arguments plus the `ts` the fake gave the message."""
        return [{**c.args, "ts": c.result.get("ts")} for c in self.calls("chat.postMessage")
                if all(c.args.get(k) == v for k, v in where.items())]

    def responses(self, name: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [c.args for c in self._responses
                    if (name is None or c.method == name) and c.status == 200]

    def uploads(self, **where: Any) -> list[dict[str, Any]]:
        """Files shared by files.completeUploadExternal (in order), matching `where` (e.g.
        thread_ts=…): id, filename, title, data (the uploaded bytes), channel, thread_ts,
        initial_comment."""
        with self._lock:
            done = [f for f in self._files.values() if f.get("shared")]
        return [f for f in done if all(f.get(k) == v for k, v in where.items())]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 15.0,
                 what: str = "condition") -> Any:
        """Poll `predicate` until truthy (returned) or fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                refused = f"; refused as invalid: {self.invalid[:5]}" if self.invalid else ""
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; "
                                     f"calls: {[c.method for c in self.calls(ok_only=False)]}"
                                     + refused)
            time.sleep(0.02)

    # -- server -------------------------------------------------------------------------------

    def _next_failure(self, method: str) -> Failure | None:
        with self._lock:
            queue = self._failures.get(method) or []
            while queue and queue[0].times <= 0:
                queue.pop(0)
            if not queue:
                return None
            queue[0].times -= 1
            return queue[0]

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "url": "https://acme.slack.test/", "team": "Acme",
                    "user": "llm-incident", "team_id": "T0001", "user_id": BOT_USER,
                    "bot_id": "B0001"}
        if method == "chat.postMessage":
            n = next(self._ts)
            ts = f"{1_700_000_000 + n}.{n:06d}"
            return {"ok": True, "channel": args.get("channel"), "ts": ts,
                    "message": {"text": args.get("text"), "ts": ts, "bot_id": "B0001"}}
        if method == "chat.update":
            return {"ok": True, "channel": args.get("channel"), "ts": args.get("ts"),
                    "text": args.get("text")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"{1_800_000_000 + next(self._ts)}.000001"}
        if method == "chat.getPermalink":
            ts = str(args.get("message_ts", "")).replace(".", "")
            link = f"https://acme.slack.test/archives/{args.get('channel')}/p{ts}"
            return {"ok": True, "channel": args.get("channel"),
                    **({"permalink": link} if self.permalink == "default" else
                       {} if self.permalink is None else {"permalink": self.permalink})}
        if method in ("views.open", "views.publish", "views.update", "views.push"):
            view = dict(args.get("view") or {})
            view.update(id=f"V{next(self._views):08d}", hash="h1")
            return {"ok": True, "view": view}
        if method == "users.info":
            user = args.get("user", "U0")
            return {"ok": True, "user": {"id": user, "name": user.lower(),
                                         "real_name": f"User {user}", "tz": "UTC"}}
        if method == "usergroups.users.list":
            group = args.get("usergroup", "")
            if group not in self.usergroups:
                return {"ok": False, "error": "no_such_subteam"}
            return {"ok": True, "users": list(self.usergroups[group])}
        if method == "files.getUploadURLExternal":
            file_id = f"F{next(self._file_ids):08d}"
            self._files[file_id] = {"id": file_id, "filename": args.get("filename"),
                                    "length": int(args.get("length") or 0), "data": None}
            return {"ok": True, "file_id": file_id, "upload_url": f"{self.url}/upload/{file_id}"}
        if method == "files.completeUploadExternal":
            shared = []
            for item in args.get("files") or []:
                f = self._files.get(item.get("id"))
                if f is None or f["data"] is None:
                    return {"ok": False, "error": "file_not_found"}
                f.update(title=item.get("title"), channel=args.get("channel_id"),
                         thread_ts=args.get("thread_ts"),
                         initial_comment=args.get("initial_comment"), shared=len(self._files))
                shared.append({"id": f["id"], "title": f["title"], "name": f["filename"]})
            n = next(self._ts)
            self._shares.append({"channel": args.get("channel_id"),
                                 "ts": f"{1_700_000_000 + n}.{n:06d}",
                                 "thread_ts": args.get("thread_ts"), "files": shared,
                                 "text": args.get("initial_comment") or ""})
            return {"ok": True, "files": shared}
        if method in ("conversations.replies", "conversations.history"):
            return self._conversation(method, args)
        if method == "canvases.create":
            if not self.canvases_allowed:
                return {"ok": False, "error": "team_tier_cannot_create_channel_canvases"}
            return {"ok": True, "canvas_id": f"F{next(self._file_ids):08d}"}
        if method == "apps.connections.open":
            if self.socket_url is None:
                return {"ok": False, "error": "not_supported_by_fake"}
            return {"ok": True, "url": f"{self.socket_url}?ticket={next(self._tickets)}"}
        return {"ok": False, "error": "unknown_method"}

    def _conversation(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        """A thread (replies: `ts` and its replies, oldest first) or a channel's top-level
        messages (history: newest first), from what was posted; `limit` + `cursor` pages."""
        channel, thread = args.get("channel"), args.get("ts")
        metadata = str(args.get("include_all_metadata")).lower() in ("1", "true")
        messages = [{"type": "message", "user": BOT_USER, "bot_id": "B0001",
                     "ts": c.result.get("ts"), "text": c.args.get("text"),
                     **({"thread_ts": c.args["thread_ts"]} if c.args.get("thread_ts") else {}),
                     **({"metadata": c.args["metadata"]}
                        if metadata and c.args.get("metadata") else {})}
                    for c in self._calls if c.method == "chat.postMessage" and c.ok
                    and c.args.get("channel") == channel]
        messages += [{"type": "message", "user": BOT_USER, "ts": s["ts"], "text": s["text"],
                      "files": s["files"], **({"thread_ts": s["thread_ts"]}
                                               if s["thread_ts"] else {})}
                     for s in self._shares if s["channel"] == channel]
        if method == "conversations.replies":
            found = sorted((m for m in messages if thread in (m["ts"], m.get("thread_ts"))),
                           key=lambda m: m["ts"])
            if not found:
                return {"ok": False, "error": "thread_not_found"}
        else:
            found = sorted((m for m in messages if m.get("thread_ts") in (None, m["ts"])),
                           key=lambda m: m["ts"], reverse=True)
        start, limit = int(args.get("cursor") or 0), int(args.get("limit") or 100)
        more = start + limit < len(found)
        return {"ok": True, "messages": found[start:start + limit], "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    def _held(self, method: str, args: dict[str, Any]) -> bool:
        """True when this call is to be held unanswered (see `hang`)."""
        with self._lock:
            for i, (m, when) in enumerate(self._hangs):
                if m == method and when(args):
                    del self._hangs[i]
                    self._hanging[method] = self._hanging.get(method, 0) + 1
                    released = self._released
                    break
            else:
                return False
        released.wait(300)
        with self._lock:
            self._hanging[method] -= 1
        return True

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                if self.path.startswith("/upload/"):
                    self._upload(self.path.removeprefix("/upload/"), self.rfile.read(length))
                    return
                raw = self.rfile.read(length).decode("utf-8")
                args = _parse_args(raw, self.headers.get("Content-Type", ""))
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ") or None
                token = token or args.pop("token", None)
                outage = fake._outage
                if outage is not None:
                    mode, status, retry_after = outage
                    with fake._lock:
                        fake._calls.append(Call(self.path.removeprefix("/api/").split("?")[0],
                                                {**args, "_failed": True}, status=status))
                    if mode == "hang":
                        fake._outage_over.wait(120)
                        self.close_connection = True
                        return
                    self._json(status, {"ok": False, "error": "ratelimited" if status == 429
                                        else "fatal_error"},
                               {"Retry-After": str(retry_after or 1)} if status == 429 else None)
                    return
                if self.path.startswith("/response/"):
                    name = self.path.removeprefix("/response/")
                    if name in fake.expired_responses:
                        self._send(404, b"expired_url", "text/plain")
                        return
                    problems = message_problems(args, where=f"response_url {name}")
                    with fake._lock:
                        fake.invalid += problems
                        fake._responses.append(Call(method=name, args=args,
                                                    status=400 if problems else 200))
                    if problems:
                        self._send(400, b"invalid_blocks", "text/plain")
                    else:
                        self._send(200, b"ok", "text/plain")
                    return
                method = self.path.removeprefix("/api/").split("?")[0]
                problems = call_problems(method, args)
                if problems:
                    error = "invalid_arguments" if method in VIEW_METHODS else "invalid_blocks"
                    with fake._lock:
                        fake.invalid += problems
                        fake._calls.append(Call(method, {**args, "_failed": True}, token=token))
                    self._json(200, {"ok": False, "error": error,
                                     "response_metadata": {"messages": problems[:5]}})
                    return
                failure = fake._next_failure(method)
                if failure is not None:
                    with fake._lock:
                        fake._calls.append(Call(method, {**args, "_failed": True},
                                                status=failure.status, token=token))
                    if failure.error:
                        self._json(200, {"ok": False, "error": failure.error})
                    elif failure.status == 429:
                        self._json(429, {"ok": False, "error": "ratelimited"},
                                   {"Retry-After": str(failure.retry_after or 1)})
                    else:
                        self._send(failure.status, b"<html>upstream error</html>", "text/html")
                    return
                with fake._lock:
                    answer = fake._answer(method, args)
                    fake._calls.append(Call(method, args, token=token, result=answer))
                if fake._held(method, args):
                    self.close_connection = True  # the answer is lost
                    return
                self._json(200, answer)

            def _upload(self, file_id: str, data: bytes) -> None:
                """The raw upload step; `fail("upload", …)` makes it fail."""
                failure = fake._next_failure("upload")
                with fake._lock:
                    fake._calls.append(Call("upload", {"file_id": file_id, "bytes": len(data),
                                                       "_failed": failure is not None},
                                            status=failure.status if failure else 200))
                    known = fake._files.get(file_id)
                    if failure is None and known is not None:
                        known["data"] = data
                if failure is not None:
                    self._send(failure.status, b"upstream error", "text/plain")
                elif known is None:
                    self._send(404, b"unknown upload", "text/plain")
                else:
                    self._send(200, b"OK - " + str(len(data)).encode(), "text/plain")

            def _json(self, status: int, body: dict[str, Any],
                      headers: dict[str, str] | None = None) -> None:
                self._send(status, json.dumps(body).encode(), "application/json", headers)

            def _send(self, status: int, body: bytes, content_type: str,
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        return Handler


def _parse_args(raw: str, content_type: str) -> dict[str, Any]:
    if "json" in content_type:
        args = json.loads(raw or "{}")
    else:
        args = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
    for key in JSON_ARGS:
        if isinstance(args.get(key), str):
            try:
                args[key] = json.loads(args[key])
            except ValueError:
                pass
    return args
