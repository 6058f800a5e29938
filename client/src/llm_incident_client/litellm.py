"""A LiteLLM callback that enforces route controls in the proxy and records each call (extra `litellm`).

`IncidentCallback` is a `litellm.integrations.custom_logger.CustomLogger`. In the LiteLLM proxy its
`async_pre_call_hook` reads the request's route and its `Decision`: a killed route gets the fallback (the proxy
answers a chat completion with that text) or, with `on_kill="reject"`, a `RouteRejected` error (`status_code` 503); otherwise
the token limit is capped (added when absent), the model swapped for the control's model (a `model_name` of the
proxy config) and the retries (`num_retries`) capped. Its success and failure callbacks, which LiteLLM calls for
the proxy, the Router and `litellm.completion` alike, log one event per call: model, provider, tokens, duration,
status, error code, attempt.

The route comes from, in order: the request metadata's `llm_incident_route`, a tag `route:<name>`, the API key's
alias, `default_route`. Calls with none are neither guarded nor recorded.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from llm_incident_client.attempts import log_call, sink_resolver
from llm_incident_client.controls import Controls
from llm_incident_client.decision import TOKEN_LIMIT_KEYS, Decision
from llm_incident_client.tracking import Call, EventSink, error_code_of

__all__ = ["IncidentCallback", "RouteRejected"]

log = logging.getLogger("llm_incident.client")

ROUTE_KEY = "llm_incident_route"
VERSION_KEY = "llm_incident_controls_version"
_DEFAULT_REPLY = "This feature is unavailable right now."
_RESPONSES_CALLS = ("responses", "aresponses")
_SEEN = 10_000  # call ids remembered, so a call logged by both the sync and async callback counts once


class RouteRejected(Exception):
    """A killed route refused in the proxy (`on_kill="reject"`); the proxy answers it with `status_code`."""

    status_code = 503

    def __init__(self, route: str, decision: Decision) -> None:
        self.route, self.decision = route, decision
        self.message = decision.fallback_message or f"route {route!r} is switched off"
        super().__init__(self.message)


class IncidentCallback(CustomLogger):
    """Route controls in `async_pre_call_hook`, events from the success and failure callbacks.

    controls: the `Controls` cache (None: record only). events: an `EventLogger` (None: the default logger of
    `configure()`). default_route: for requests that name none. on_kill: "reply" (the fallback text as the
    answer) or "reject" (`RouteRejected`). fallback_message: the text when the responders set none.
    env: recorded on events (default: the controls' env).
    """

    def __init__(self, controls: Controls | None = None, events: EventSink | None = None, *,
                 default_route: str | None = None, on_kill: str = "reply", fallback_message: str | None = None,
                 env: str | None = None, tag_prefix: str = "route:") -> None:
        if on_kill not in ("reply", "reject"):
            raise ValueError('on_kill must be "reply" or "reject"')
        super().__init__()
        self.controls, self.default_route, self.on_kill = controls, default_route, on_kill
        self.fallback_message, self.tag_prefix = fallback_message, tag_prefix
        self.env = env if env is not None else getattr(controls, "env", None)
        self._sink = sink_resolver(events)
        self._logged: OrderedDict[str, None] = OrderedDict()

    # ---- enforcement (proxy) ---------------------------------------------------------------------------

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict, call_type: Any) -> Any:
        """The request with the route's overrides applied, or the fallback text for a killed route."""
        meta = data.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        route = self.route_of(meta, data.get("tags"), getattr(user_api_key_dict, "key_alias", None))
        if route is None or self.controls is None:
            return data
        decision = self.controls.guard(route)
        if not decision.allowed:
            if self.on_kill == "reject":
                raise RouteRejected(route, decision)
            return decision.fallback_message or self.fallback_message or _DEFAULT_REPLY
        out = apply(decision, data, responses=str(call_type) in _RESPONSES_CALLS)
        out["metadata"] = {**meta, ROUTE_KEY: route, VERSION_KEY: decision.version}
        return out

    def route_of(self, metadata: Mapping[str, Any], tags: Any = None, key_alias: Any = None) -> str | None:
        """The route a request names: metadata, then a `route:` tag, then the key alias, then the default."""
        named = metadata.get(ROUTE_KEY)
        if isinstance(named, str) and named.strip():
            return named.strip()
        for tag in list(tags or []) + list(metadata.get("tags") or []):
            if isinstance(tag, str) and tag.startswith(self.tag_prefix) and tag[len(self.tag_prefix):].strip():
                return tag[len(self.tag_prefix):].strip()
        alias = key_alias or metadata.get("user_api_key_alias")
        if isinstance(alias, str) and alias.strip():
            return alias.strip()
        return self.default_route

    # ---- recording (proxy, Router, litellm.completion) -------------------------------------------------

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._record(kwargs, start_time, end_time, failed=False)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._record(kwargs, start_time, end_time, failed=True)

    def log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._record(kwargs, start_time, end_time, failed=False)

    def log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._record(kwargs, start_time, end_time, failed=True)

    def _record(self, kwargs: dict, start_time: Any, end_time: Any, *, failed: bool) -> None:
        try:
            call = self.call_of(kwargs, start_time, end_time, failed=failed)
            if call is None or self._already_logged(kwargs.get("litellm_call_id"), failed):
                return
            log_call(self._sink, call)
        except Exception:  # noqa: BLE001 - a callback must never break the proxy
            log.debug("llm-incident litellm callback: could not record the call", exc_info=True)

    def call_of(self, kwargs: Mapping[str, Any], start_time: Any, end_time: Any, *, failed: bool) -> Call | None:
        """The event of one LiteLLM call, from its logging kwargs; None when it names no route."""
        payload = _mapping(kwargs.get("standard_logging_object"))
        payload_meta = _mapping(payload.get("metadata"))
        meta = _mapping(_mapping(kwargs.get("litellm_params")).get("metadata"))
        route = self.route_of(meta, payload.get("request_tags"),
                              meta.get("user_api_key_alias") or payload_meta.get("user_api_key_alias"))
        if route is None:
            return None
        hidden = _mapping(payload.get("hidden_params"))
        retries = meta.get("attempted_retries")  # the Router's count, on failures too
        if not isinstance(retries, int):
            retries = _mapping(hidden.get("additional_headers")).get("x-litellm-attempted-retries")
        call = Call(route=route, env=self.env, model=_text(kwargs.get("model")),
                    provider=_text(kwargs.get("custom_llm_provider") or payload.get("custom_llm_provider")),
                    attempt=retries + 1 if isinstance(retries, int) and retries >= 0 else None,
                    metadata=_metadata(payload, meta, kwargs))
        call.ts = _utc(start_time)
        if isinstance(start_time, datetime) and isinstance(end_time, datetime):
            call.duration_ms = round((end_time - start_time).total_seconds() * 1000, 3)
        if failed:
            error = _mapping(payload.get("error_information"))
            call.status = "error"
            exc = kwargs.get("exception")
            status = getattr(exc, "status_code", None) if isinstance(exc, BaseException) else None
            call.error_code = (str(status) if isinstance(status, int) else None) or _text(
                error.get("error_code")) or (error_code_of(exc) if isinstance(exc, BaseException) else "error")
        else:
            call.tokens_in, call.tokens_out = _count(payload.get("prompt_tokens")), _count(
                payload.get("completion_tokens"))
        return call

    def _already_logged(self, call_id: Any, failed: bool) -> bool:
        if not isinstance(call_id, str):
            return False
        key = f"{call_id}:{failed}"
        if key in self._logged:
            return True
        self._logged[key] = None
        while len(self._logged) > _SEEN:
            self._logged.popitem(last=False)
        return False


def apply(decision: Decision, data: dict[str, Any], *, responses: bool = False) -> dict[str, Any]:
    """A copy of a LiteLLM request with the overrides: token limit capped (or added), model swapped, retries
    capped."""
    out = decision.apply(data)
    if responses and decision.max_tokens is not None and not any(key in data for key in TOKEN_LIMIT_KEYS):
        out["max_output_tokens"] = out.pop("max_tokens")
    if decision.retry_cap is not None:
        asked = data.get("num_retries")
        usable = isinstance(asked, int) and not isinstance(asked, bool) and asked >= 0
        out["num_retries"] = min(asked, decision.retry_cap) if usable else decision.retry_cap
    return out


def _metadata(payload: Mapping[str, Any], meta: Mapping[str, Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"integration": "litellm", "stream": bool(payload.get("stream") or kwargs.get("stream"))}
    if isinstance(payload.get("model_group"), str):
        out["model_group"] = payload["model_group"]
    if isinstance(meta.get(VERSION_KEY), int):
        out["controls_version"] = meta[VERSION_KEY]
    return out


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _utc(moment: Any) -> str | None:
    """A LiteLLM timestamp (naive local time, or aware) as RFC 3339 UTC."""
    if not isinstance(moment, datetime):
        return None
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
