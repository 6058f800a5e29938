"""How soon any detector could confirm a jump: the calls (hence minutes) a one-sided test that
knows the onset and the rate before needs to see a jump with `POWER` (95 %) at level `ALPHA`.

No alert rule can beat these figures on average without more false alerts, so a delay target
below them is ill-posed. `ALPHA` = 1e-3 is lenient: at one look per rule and route every 15
minutes (overlapping windows are not independent looks), 7 rules give ~4,700 looks per
route-week, so ≤ 1 false alert per route-week needs α ≈ 2e-4 per look; the shift detector, which
must also find the onset, runs at 1e-2 over ~120 candidate splits (≈ 8e-5 each).

- a rate (flagged, errors, 429s): exact binomial test of p0 against p1 = the jumped rate;
- a value (p95 tokens, duration, cost per call; roughly lognormal): z-test of the mean log
  against its known before, σ = the spread of the log value;
- silence: no call in m minutes at λ calls/min has chance e^(-λ m).
"""

from __future__ import annotations

import math
from functools import lru_cache

from scipy.stats import binom, norm

ALPHA, POWER = 1e-3, 0.95


@lru_cache(maxsize=None)
def rate_calls(p0: float, p1: float, alpha: float = ALPHA, power: float = POWER) -> int:
    """The fewest calls after the onset at which a one-sided exact binomial test at `alpha`
    sees a rise from `p0` to `p1` with `power`."""
    n = 1
    while True:
        critical = int(binom.isf(alpha, n, p0)) + 1     # smallest c with P(X ≥ c | p0) ≤ α
        while binom.sf(critical - 1, n, p0) > alpha:
            critical += 1
        if binom.sf(critical - 1, n, p1) >= power:
            return n
        n = n + 1 if n < 50 else int(n * 1.02) + 1


def shift_calls(sigma: float, k: float, alpha: float = ALPHA, power: float = POWER) -> int:
    """Calls for a one-sided z-test of the mean log to see a ×k jump (log spread `sigma`)."""
    z = norm.isf(alpha) + norm.isf(1 - power)
    return max(1, math.ceil((z * sigma / math.log(k)) ** 2))


def silence_minutes(per_min: float, alpha: float = ALPHA) -> float:
    """Minutes without a call that make a stop sure at `alpha`."""
    return -math.log(alpha) / per_min if per_min > 0 else math.inf


def minutes_for(calls: int, per_min: float) -> float:
    return calls / per_min if per_min > 0 else math.inf
