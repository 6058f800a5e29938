"""`Decision`: what the route controls say about one LLM call, and how to apply it to request kwargs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TOKEN_LIMIT_KEYS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


@dataclass(frozen=True, slots=True)
class Decision:
    """The controls for a route as the app should act on them.

    `allowed` False: answer with `fallback_message` (the server's, else the client's default) instead of calling
    the model. `max_tokens`, `model`, `provider`, `retry_cap`: overrides, None = keep your own. `version`: the
    server's version of these controls (0 = never changed), None when the route was never fetched and this is
    the client's fail-open / fail-closed default.
    """

    allowed: bool = True
    fallback_message: str | None = None
    max_tokens: int | None = None
    model: str | None = None
    provider: str | None = None
    retry_cap: int | None = None
    version: int | None = None

    def apply(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of OpenAI-style request kwargs with the overrides applied; never raises.

        Token limits present (`max_tokens`, `max_completion_tokens`, `max_output_tokens`) are clamped to
        `max_tokens`; when none is present `max_tokens` is added. `model` is replaced when overridden. Provider
        and retry cap are not request kwargs: route with `provider`, pass `retry_cap` to your client's retries.
        """
        try:
            out = dict(kwargs)
        except Exception:  # noqa: BLE001 - not a mapping: nothing we can apply to
            return {}
        try:
            if self.max_tokens is not None:
                present = [key for key in TOKEN_LIMIT_KEYS if key in out]
                for key in present or ["max_tokens"]:
                    value = out.get(key)
                    usable = isinstance(value, int) and not isinstance(value, bool) and value > 0
                    out[key] = min(value, self.max_tokens) if usable else self.max_tokens
            if self.model is not None:
                out["model"] = self.model
        except Exception:  # noqa: BLE001 - apply() never raises into the application
            return dict(kwargs)
        return out
