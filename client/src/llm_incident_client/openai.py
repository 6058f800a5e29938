"""The official `openai` client under a route's controls, each call recorded (extra `openai`).

    client = instrument(OpenAI(), route="support.reply", controls=controls, events=events)
    client.chat.completions.create(model="gpt-4o", messages=[...], max_tokens=2000)

`instrument` wraps an `OpenAI` or `AsyncOpenAI` client; `chat.completions.create` and `responses.create`
(streamed or not) then read the route's `Decision` before each call: killed → no upstream request, the fallback
(`RouteKilled`, or a canned reply when `fallback=` is given); token clamp → `max_tokens` /
`max_completion_tokens` / `max_output_tokens` capped (added when absent); model switch → `model` replaced;
provider switch → the client given for that provider in `clients=`; retry cap → at most that many retries.
Retries are made here, one event per upstream attempt (the SDK's own retries are off), with the SDK's policy:
408, 409, 429, 5xx and connection errors, `Retry-After` honoured up to 2 minutes, else 0.5 s doubling to 8 s.
Every other attribute of the client is passed through unguarded.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseCompletedEvent, ResponseTextDeltaEvent

from llm_incident_client.attempts import Attempt, new_call, sink_resolver
from llm_incident_client.controls import Controls
from llm_incident_client.decision import TOKEN_LIMIT_KEYS, Decision
from llm_incident_client.tracking import EventSink
from llm_incident_client.transport import retry_after_seconds

__all__ = ["AsyncInstrumentedOpenAI", "InstrumentedOpenAI", "RouteKilled", "instrument"]

log = logging.getLogger("llm_incident.client")

CHAT, RESPONSES = "chat.completions", "responses"
_LIMIT_KEY = {CHAT: "max_completion_tokens", RESPONSES: "max_output_tokens"}  # added when none is given
_MAX_RETRY_AFTER = 120.0
_DEFAULT_REPLY = "This feature is unavailable right now."
Fallback = str | Callable[[Decision], str] | None


class RouteKilled(Exception):
    """The route is switched off: no request was sent. `message` is the fallback text the responders set."""

    def __init__(self, route: str, decision: Decision) -> None:
        self.route, self.decision, self.message = route, decision, decision.fallback_message
        super().__init__(f"route {route!r} is switched off" + (f": {self.message}" if self.message else ""))


def instrument(client: openai.OpenAI | openai.AsyncOpenAI, route: str, *, controls: Controls | None = None,
               events: EventSink | None = None, fallback: Fallback = None, env: str | None = None,
               provider: str = "openai", clients: Mapping[str, Any] | None = None,
               ) -> InstrumentedOpenAI | AsyncInstrumentedOpenAI:
    """Wrap `client` so that its calls obey `route`'s controls and are recorded as events.

    controls: the `Controls` cache (None: record only). events: an `EventLogger` (None: the default logger of
    `configure()`). fallback: None raises `RouteKilled` on a killed route; a string (or `fn(decision)`) answers
    with a canned reply instead — the responders' `fallback_message` when they set one, else this text.
    env: recorded on events (default: the controls' env). provider: recorded, and the name of `client`;
    clients: other providers' OpenAI-compatible clients, used while the route is switched to them.
    """
    if not isinstance(route, str) or not route.strip():
        raise ValueError("route must be a non-empty string")
    is_async = isinstance(client, openai.AsyncOpenAI)
    if not is_async and not isinstance(client, openai.OpenAI):
        raise TypeError(f"expected openai.OpenAI or openai.AsyncOpenAI, got {type(client).__name__}")
    policy = _Policy(route, controls, sink_resolver(events), fallback,
                     env if env is not None else getattr(controls, "env", None), provider, dict(clients or {}))
    return (AsyncInstrumentedOpenAI if is_async else InstrumentedOpenAI)(client, policy)


class _Policy:
    """What an instrumented client does around each call: decide, rewrite, record, retry, fall back."""

    def __init__(self, route: str, controls: Controls | None, sink: Callable[[], EventSink | None],
                 fallback: Fallback, env: str | None, provider: str, clients: dict[str, Any]) -> None:
        self.route, self.controls, self.sink, self.fallback = route, controls, sink, fallback
        self.env, self.provider, self.clients = env, provider, clients
        self._upstreams: dict[int, tuple[Any, Any]] = {}  # id → (client, its copy without SDK retries)
        self._warned: set[str] = set()

    def decide(self) -> Decision:
        return self.controls.guard(self.route) if self.controls is not None else Decision()

    def target(self, client: Any, decision: Decision) -> tuple[Any, str, int]:
        """The client to send to (a copy with the SDK's retries off), its provider name and allowed retries."""
        name = decision.provider
        if name is not None and name != self.provider:
            if name in self.clients:
                client = self.clients[name]
            else:
                name = self.provider
                if decision.provider not in self._warned:
                    self._warned.add(decision.provider)
                    log.warning("llm-incident: route %s is switched to provider %r, but instrument() has no "
                                "client for it (clients=); staying on %r", self.route, decision.provider, name)
        retries = client.max_retries
        if decision.retry_cap is not None:
            retries = max(0, min(retries, decision.retry_cap))
        held = self._upstreams.get(id(client))
        if held is None or held[0] is not client:
            held = self._upstreams[id(client)] = (client, client.with_options(max_retries=0))
        return held[1], name or self.provider, retries

    def copy(self) -> _Policy:
        """The same settings with a cache of upstream copies of its own (for `with_options`)."""
        twin = copy.copy(self)
        twin._upstreams = {}
        return twin

    def request(self, api: str, kwargs: dict[str, Any], decision: Decision) -> dict[str, Any]:
        """The kwargs with the overrides applied (token limit capped or added, model replaced)."""
        out = decision.apply(kwargs)
        if decision.max_tokens is not None and not any(key in kwargs for key in TOKEN_LIMIT_KEYS):
            out[_LIMIT_KEY[api]] = out.pop("max_tokens")
        return out

    def begin(self, api: str, request: dict[str, Any], number: int, decision: Decision, provider: str) -> Attempt:
        metadata: dict[str, Any] = {"api": api, "stream": bool(request.get("stream"))}
        if decision.version is not None:
            metadata["controls_version"] = decision.version
        return Attempt(self.sink, new_call(self.route, env=self.env, model=request.get("model"),
                                           provider=provider, attempt=number, metadata=metadata))

    def reply_text(self, decision: Decision) -> str | None:
        """The canned reply for a killed route, or None to raise `RouteKilled`."""
        if self.fallback is None:
            return None
        if callable(self.fallback):
            return str(self.fallback(decision))
        return decision.fallback_message or self.fallback or _DEFAULT_REPLY


def retry_wait(exc: BaseException, number: int, retries: int) -> float | None:
    """Seconds to wait before retrying after attempt `number` failed with `exc`; None: do not retry."""
    if number > retries:
        return None
    after = None
    if isinstance(exc, openai.APIStatusError):
        headers = exc.response.headers
        should, status = headers.get("x-should-retry"), exc.status_code
        if should == "false" or should != "true" and status not in (408, 409, 429) and status < 500:
            return None
        after = _retry_after(headers)
        if after is not None and after > _MAX_RETRY_AFTER:
            return None
    elif not isinstance(exc, openai.APIConnectionError):  # timeouts included
        return None
    if after is not None and after > 0:
        return after
    return min(0.5 * 2 ** (number - 1), 8.0) * (1 - 0.25 * random.random())


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return float(headers["retry-after-ms"]) / 1000
    except (KeyError, TypeError, ValueError):
        return retry_after_seconds(headers.get("retry-after"))


# ---- usage and canned replies ----------------------------------------------------------------------------

def usage_of(api: str, usage: Any) -> tuple[int | None, int | None]:
    """(tokens in, tokens out) from a chat or responses `usage` object."""
    if usage is None:
        return None, None
    if api == CHAT:
        return getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None)
    return getattr(usage, "input_tokens", None), getattr(usage, "output_tokens", None)


def canned(api: str, model: Any, text: str, *, stream: bool) -> Any:
    """A reply shaped like the API's (a list of stream items when `stream`), with no usage."""
    model, created = str(model or "llm-incident-fallback"), int(time.time())
    if api == CHAT:
        if stream:
            return [ChatCompletionChunk.model_validate({
                "id": "llm-incident-fallback", "object": "chat.completion.chunk", "created": created,
                "model": model, "choices": [{"index": 0, "delta": {"role": "assistant", "content": text},
                                             "finish_reason": "stop"}]})]
        return ChatCompletion.model_validate({
            "id": "llm-incident-fallback", "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}]})
    response = Response.model_validate({
        "id": "llm-incident-fallback", "object": "response", "created_at": created, "model": model,
        "status": "completed", "parallel_tool_calls": False, "tool_choice": "auto", "tools": [],
        "output": [{"type": "message", "id": "msg-llm-incident-fallback", "role": "assistant",
                    "status": "completed", "content": [{"type": "output_text", "text": text, "annotations": []}]}]})
    if not stream:
        return response
    return [ResponseTextDeltaEvent(type="response.output_text.delta", delta=text, item_id=response.output[0].id,
                                   output_index=0, content_index=0, logprobs=[], sequence_number=0),
            ResponseCompletedEvent(type="response.completed", response=response, sequence_number=1)]


class _StreamWatch:
    """Follows a stream's items for usage and a failed response; finishes the attempt at its end."""

    def __init__(self, api: str, attempt: Attempt, hide_usage_chunk: bool) -> None:
        self.api, self.attempt, self.hide = api, attempt, hide_usage_chunk
        self.tokens: tuple[int | None, int | None] = (None, None)
        self.pieces = 0
        self.failed: str | None = None

    def see(self, item: Any) -> bool:
        """Note one item; False when it is our usage-only chunk, which the application did not ask for."""
        if self.api == CHAT:
            usage = getattr(item, "usage", None)
            if usage is not None:
                self.tokens = usage_of(CHAT, usage)
            choices = getattr(item, "choices", None) or []
            self.pieces += sum(1 for c in choices if getattr(getattr(c, "delta", None), "content", None))
            return not (self.hide and usage is not None and not choices)
        kind = getattr(item, "type", None)
        if kind == "response.output_text.delta":
            self.pieces += 1
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            response = getattr(item, "response", None)
            self.tokens = usage_of(RESPONSES, getattr(response, "usage", None))
            if kind == "response.failed":
                error = getattr(response, "error", None)
                self.failed = str(getattr(error, "code", None) or "response.failed")
        return True

    def end(self, error: BaseException | None = None) -> None:
        tokens_in, tokens_out = self.tokens
        if tokens_out is None and self.pieces:
            tokens_out = self.pieces  # no usage reported: one token per text piece, a floor
        self.attempt.finish(tokens_in=tokens_in, tokens_out=tokens_out, error=error, error_code=self.failed)


def _stream_request(api: str, request: dict[str, Any]) -> bool:
    """Ask a chat stream for its usage; True when the usage chunk is ours to hide from the application."""
    if api != CHAT or not request.get("stream") or request.get("stream_options") is not None:
        return False
    request["stream_options"] = {"include_usage": True}
    return True


def _own(obj: Any, attribute: str, looked_up: str) -> Any:
    """`obj.attribute`, the wrapped object that `__getattr__` delegates `looked_up` to; AttributeError while
    it is not set yet (half-built, being copied), instead of recursing."""
    try:
        return object.__getattribute__(obj, attribute)
    except AttributeError:
        raise AttributeError(looked_up) from None


# ---- sync and async ------------------------------------------------------------------------------------

class _Recorded:
    """A stream whose end (exhausted, failed, closed or dropped) logs the attempt's event once."""

    _watch: _StreamWatch | None = None  # also seen by __del__ of a half-built instance

    def __init__(self, stream: Any, watch: _StreamWatch | None) -> None:
        self._stream, self._watch = stream, watch

    def _shown(self, item: Any) -> bool:
        return self._watch is None or self._watch.see(item)

    def _end(self, error: BaseException | None = None) -> None:
        if self._watch is not None:
            self._watch.end(None if isinstance(error, (StopIteration, StopAsyncIteration)) else error)

    def __del__(self) -> None:
        self._end()

    def __getattr__(self, name: str) -> Any:
        return getattr(_own(self, "_stream", name), name)


class RecordedStream(_Recorded):
    """An `openai.Stream` (or a canned reply's items) whose end logs the attempt's event."""

    def __init__(self, stream: Any, watch: _StreamWatch | None) -> None:
        super().__init__(stream, watch)
        self._items = iter(stream)

    def __iter__(self) -> RecordedStream:
        return self

    def __next__(self) -> Any:
        while True:
            try:
                item = next(self._items)
            except BaseException as exc:
                self._end(exc)
                raise
            if self._shown(item):
                return item

    def close(self) -> None:
        self._end()
        closer = getattr(self._stream, "close", None)
        if closer is not None:
            closer()

    def __enter__(self) -> RecordedStream:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class AsyncRecordedStream(_Recorded):
    """An `openai.AsyncStream` (or a canned reply's items) whose end logs the attempt's event."""

    def __init__(self, stream: Any, watch: _StreamWatch | None) -> None:
        super().__init__(stream, watch)
        self._items = stream.__aiter__() if hasattr(stream, "__aiter__") else _async_items(stream)

    def __aiter__(self) -> AsyncRecordedStream:
        return self

    async def __anext__(self) -> Any:
        while True:
            try:
                item = await self._items.__anext__()
            except BaseException as exc:
                self._end(exc)
                raise
            if self._shown(item):
                return item

    async def close(self) -> None:
        self._end()
        closer = getattr(self._stream, "close", None)
        if closer is not None and asyncio.iscoroutinefunction(closer):
            await closer()

    async def __aenter__(self) -> AsyncRecordedStream:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


async def _async_items(items: list[Any]) -> Any:
    for item in items:
        yield item


class _Canned(Exception):
    def __init__(self, reply: Any) -> None:
        self.reply = reply


class _Method:
    """`create` of one API under the route's policy; other attributes of the resource pass through."""

    _stream_type: type[_Recorded] = RecordedStream

    def __init__(self, owner: Any, api: str) -> None:
        self._owner, self._api = owner, api

    def _resource(self, client: Any) -> Any:
        return client.chat.completions if self._api == CHAT else client.responses

    def __getattr__(self, name: str) -> Any:
        return getattr(self._resource(_own(self, "_owner", name)._client), name)

    def _prepare(self, kwargs: dict[str, Any]) -> _Call:
        """The call to make; `_Canned` when the route is killed with a canned reply, `RouteKilled` without."""
        policy: _Policy = self._owner._policy
        decision = policy.decide()
        if not decision.allowed:
            text = policy.reply_text(decision)
            if text is None:
                raise RouteKilled(policy.route, decision)
            reply = canned(self._api, kwargs.get("model"), text, stream=bool(kwargs.get("stream")))
            raise _Canned(self._stream_type(reply, None) if isinstance(reply, list) else reply)
        upstream, provider, retries = policy.target(self._owner._client, decision)
        request = policy.request(self._api, kwargs, decision)
        return _Call(self._api, policy, decision, self._resource(upstream), provider, retries, request,
                     _stream_request(self._api, request), self._stream_type)


class _Call:
    """One application call: its attempts, each begun, then finished as failed (maybe retried) or answered."""

    def __init__(self, api: str, policy: _Policy, decision: Decision, resource: Any, provider: str,
                 retries: int, request: dict[str, Any], hide_usage: bool, stream_type: type[_Recorded]) -> None:
        self.api, self.policy, self.decision, self.resource = api, policy, decision, resource
        self.provider, self.retries, self.request, self.hide = provider, retries, request, hide_usage
        self.stream_type, self.number = stream_type, 0

    def begin(self) -> Attempt:
        self.number += 1
        return self.policy.begin(self.api, self.request, self.number, self.decision, self.provider)

    def failed(self, attempt: Attempt, exc: BaseException) -> float | None:
        """Log the failed attempt; seconds to wait before the next one, None to give up (re-raise)."""
        attempt.finish(error=exc)
        return retry_wait(exc, self.number, self.retries)

    def answered(self, attempt: Attempt, result: Any) -> Any:
        if self.request.get("stream"):
            return self.stream_type(result, _StreamWatch(self.api, attempt, self.hide))
        tokens_in, tokens_out = usage_of(self.api, getattr(result, "usage", None))
        attempt.finish(tokens_in=tokens_in, tokens_out=tokens_out)
        return result


class _SyncCreate(_Method):
    def create(self, **kwargs: Any) -> Any:
        """As the SDK's `create`, under the route's controls; one event per upstream attempt."""
        try:
            call = self._prepare(kwargs)
        except _Canned as reply:
            return reply.reply
        while True:
            attempt = call.begin()
            try:
                result = call.resource.create(**call.request)
            except Exception as exc:
                if (wait := call.failed(attempt, exc)) is None:
                    raise
                time.sleep(wait)
            else:
                return call.answered(attempt, result)


class _AsyncCreate(_Method):
    _stream_type = AsyncRecordedStream

    async def create(self, **kwargs: Any) -> Any:
        """As the SDK's `create`, under the route's controls; one event per upstream attempt."""
        try:
            call = self._prepare(kwargs)
        except _Canned as reply:
            return reply.reply
        while True:
            attempt = call.begin()
            try:
                result = await call.resource.create(**call.request)
            except Exception as exc:
                if (wait := call.failed(attempt, exc)) is None:
                    raise
                await asyncio.sleep(wait)
            else:
                return call.answered(attempt, result)


class _Namespace:
    def __init__(self, target: Any, **children: Any) -> None:
        self._target = target
        self.__dict__.update(children)

    def __getattr__(self, name: str) -> Any:
        return getattr(_own(self, "_target", name), name)


class InstrumentedOpenAI:
    """An `openai.OpenAI` whose `chat.completions.create` and `responses.create` obey the route's controls."""

    _method: type[_Method] = _SyncCreate

    def __init__(self, client: openai.OpenAI, policy: _Policy) -> None:
        self._client, self._policy = client, policy
        self.chat = _Namespace(client.chat, completions=self._method(self, CHAT))
        self.responses = self._method(self, RESPONSES)

    @property
    def route(self) -> str:
        return self._policy.route

    def with_options(self, **options: Any) -> Any:
        """`client.with_options(...)`, still instrumented for the same route."""
        return type(self)(self._client.with_options(**options), self._policy.copy())

    def __getattr__(self, name: str) -> Any:
        return getattr(_own(self, "_client", name), name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._client!r}, route={self._policy.route!r})"


class AsyncInstrumentedOpenAI(InstrumentedOpenAI):
    """An `openai.AsyncOpenAI` whose `chat.completions.create` and `responses.create` obey the route's
    controls (awaitables, as the SDK's)."""

    _method = _AsyncCreate
