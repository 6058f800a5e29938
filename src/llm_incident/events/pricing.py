"""Cost of a call from the `genai-prices` table (offline); unknown model → None, never 0."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from decimal import Decimal
from functools import lru_cache

from genai_prices import Usage, calc_price
from genai_prices.types import ModelPrice

FlatRates = tuple[float, float]  # USD per million input / output tokens


@lru_cache(maxsize=4096)
def _price_entry(model: str, provider: str | None, day: date) -> FlatRates | ModelPrice | None:
    """The price in force on `day`: flat rates when the table has flat prices, the library's
    entry for tiered ones, None when the table does not know the model."""
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
            return _price_entry(model, None, day)
        return None
    price = result.model_price
    flat_in, flat_out = price.input_mtok, price.output_mtok
    if isinstance(flat_in, (Decimal, type(None))) and isinstance(flat_out, (Decimal, type(None))):
        return float(flat_in or 0), float(flat_out or 0)
    return price


def cost_usd(
    model: str | None, provider: str | None, tokens_in: int | None, tokens_out: int | None,
    at: datetime,
) -> float | None:
    """Price of one call in USD; None when the model is unknown or no token counts were given."""
    if not model or (tokens_in is None and tokens_out is None):
        return None
    entry = _price_entry(model, provider, at.date())
    if entry is None:
        return None
    tin, tout = tokens_in or 0, tokens_out or 0
    if isinstance(entry, tuple):
        return (entry[0] * tin + entry[1] * tout) / 1_000_000
    return float(entry.calc_price(Usage(input_tokens=tin, output_tokens=tout))["total_price"])
