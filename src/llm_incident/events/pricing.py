"""Cost of a call from the `genai-prices` table (offline); unknown model → None, never 0."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from decimal import Decimal
from functools import lru_cache

from genai_prices import Usage, calc_price
from genai_prices.types import ModelPrice


@lru_cache(maxsize=4096)
def _model_price(model: str, provider: str | None, day: date) -> ModelPrice | None:
    """The price entry in force on `day`, or None when the table does not know the model."""
    when = datetime.combine(day, time(12), tzinfo=timezone.utc)
    try:
        result = calc_price(
            Usage(input_tokens=0, output_tokens=0),
            model_ref=model,
            provider_id=provider or None,
            genai_request_timestamp=when,
        )
    except LookupError:
        if provider:  # a provider name the table spells differently: try the model alone
            return _model_price(model, None, day)
        return None
    return result.model_price


def cost_usd(
    model: str | None, provider: str | None, tokens_in: int | None, tokens_out: int | None,
    at: datetime,
) -> float | None:
    """Price of one call in USD; None when the model is unknown or no token counts were given."""
    if not model or (tokens_in is None and tokens_out is None):
        return None
    price = _model_price(model, provider, at.date())
    if price is None:
        return None
    tin, tout = tokens_in or 0, tokens_out or 0
    flat_in, flat_out = price.input_mtok, price.output_mtok
    if isinstance(flat_in, (Decimal, type(None))) and isinstance(flat_out, (Decimal, type(None))):
        # Flat per-million prices: the same arithmetic as the library, without its per-call overhead.
        total = (flat_in or Decimal(0)) * tin + (flat_out or Decimal(0)) * tout
        return float(total / 1_000_000)
    return float(price.calc_price(Usage(input_tokens=tin, output_tokens=tout))["total_price"])
