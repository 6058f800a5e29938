"""A local OpenAI-compatible upstream for integration tests: chat completions and responses, streamed (SSE)
and not, with queued error answers (429, 5xx, …). Every request it receives is kept in `requests`.

The reply is the first `n` words of "Hello from the fake model", n = the request's token limit (5 if none),
and usage counts words: tokens in = words of the prompt, tokens out = words answered.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from tests.support import live_server

WORDS = ("Hello", " from", " the", " fake", " model")


@dataclass
class Failure:
    status: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


class FakeOpenAI:
    """The fake upstream; `serve()` runs it and yields its `base_url` (…/v1) for `OpenAI(base_url=…)`."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._failures: deque[Failure] = deque()
        self._lock = threading.Lock()
        self.app = FastAPI()
        self.app.post("/v1/chat/completions")(self._chat)
        self.app.post("/v1/responses")(self._responses)

    def fail(self, status: int, times: int = 1, **headers: str) -> None:
        """Answer the next `times` requests with `status` (headers given with `_` for `-`)."""
        with self._lock:
            self._failures.extend(Failure(status, {k.replace("_", "-"): v for k, v in headers.items()})
                                  for _ in range(times))

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    @contextmanager
    def serve(self) -> Iterator[str]:
        with live_server(self.app) as url:
            yield f"{url}/v1"

    async def _received(self, request: Request) -> tuple[dict[str, Any], Failure | None]:
        body = await request.json()
        with self._lock:
            self.requests.append(Received(request.url.path, body, dict(request.headers)))
            return body, self._failures.popleft() if self._failures else None

    async def _chat(self, request: Request):
        body, failure = await self._received(request)
        if failure is not None:
            return _error(failure)
        words = _answer(body, "max_completion_tokens", "max_tokens")
        prompt = _count_words(" ".join(str(m.get("content", "")) for m in body.get("messages", [])))
        base = {"id": "chatcmpl-fake", "created": int(time.time()), "model": body["model"]}
        usage = {"prompt_tokens": prompt, "completion_tokens": len(words), "total_tokens": prompt + len(words)}
        if not body.get("stream"):
            return {**base, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "".join(words)}}]}

        def chunks() -> Iterator[str]:
            chunk = {**base, "object": "chat.completion.chunk"}
            for i, word in enumerate(words):
                finish = "stop" if i == len(words) - 1 else None
                yield _sse({**chunk, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": finish}]})
            if (body.get("stream_options") or {}).get("include_usage"):
                yield _sse({**chunk, "choices": [], "usage": usage})
            yield "data: [DONE]\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")

    async def _responses(self, request: Request):
        body, failure = await self._received(request)
        if failure is not None:
            return _error(failure)
        words = _answer(body, "max_output_tokens")
        given = body.get("input", "")
        prompt = _count_words(given if isinstance(given, str) else json.dumps(given))
        response = {
            "id": "resp-fake", "object": "response", "created_at": int(time.time()), "model": body["model"],
            "status": "completed", "parallel_tool_calls": False, "tool_choice": "auto", "tools": [],
            "output": [{"type": "message", "id": "msg-fake", "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": "".join(words), "annotations": []}]}],
            "usage": {"input_tokens": prompt, "output_tokens": len(words), "total_tokens": prompt + len(words),
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}}}
        if not body.get("stream"):
            return response

        def events() -> Iterator[str]:
            created = {**response, "status": "in_progress", "output": [], "usage": None}
            yield _sse({"type": "response.created", "sequence_number": 0, "response": created}, "response.created")
            for i, word in enumerate(words, start=1):
                yield _sse({"type": "response.output_text.delta", "sequence_number": i, "item_id": "msg-fake",
                            "output_index": 0, "content_index": 0, "delta": word, "logprobs": []},
                           "response.output_text.delta")
            yield _sse({"type": "response.completed", "sequence_number": len(words) + 1, "response": response},
                       "response.completed")

        return StreamingResponse(events(), media_type="text/event-stream")


def _answer(body: dict[str, Any], *limit_keys: str) -> list[str]:
    limits = [body[k] for k in limit_keys if isinstance(body.get(k), int)]
    return list(WORDS[:min(limits)] if limits else WORDS)


def _count_words(text: str) -> int:
    return len(text.split())


def _sse(data: dict[str, Any], event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n"


def _error(failure: Failure) -> JSONResponse:
    kind = "rate_limit_exceeded" if failure.status == 429 else "server_error"
    return JSONResponse({"error": {"message": f"fake {failure.status}", "type": kind, "code": kind}},
                        status_code=failure.status, headers=failure.headers)
