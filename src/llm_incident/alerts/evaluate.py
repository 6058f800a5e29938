"""Evaluate alert rules: one observation (value, baseline, level) per rule and route at `now`.

Levels: `ok` < `warning` < `critical`. `level` None = no judgement, the stored state is kept
(`reason` says why; `status` "learning" when no baseline has enough history yet).

A rule that is not firing on a route:

1. reads its window (`window`, e.g. 15 min) and a short one (the last `SHORT` minutes); fewer than
   `min_after` calls in the window, or no value: not judged (a quiet window — a night at 5
   calls/min — is still searched for a shift, which has its own minimum counts; the window's own
   judgements below need `min_calls`);
2. ratio rules pick a baseline along the chain (`alerts.baselines`: week → day → trailing);
3. is *suspected* when the window, or the short window or the last `GLANCE` (2 min) from
   `SUSPECT_CALLS` calls, reaches `warning` (ratio: value ÷ baseline and at least `floor`;
   absolute: the value), or a warning is pending — most rule × route pairs stop here, cheaply;
4. a suspicion is *confirmed* by the shift detector (`alerts.confirm`): a step (or drift) up of
   the rule's stat in the last 2 h that still holds (an older change, e.g. an earlier
   regression's end, is cut off and the rest searched again), with `min_calls` calls before the
   onset and `min_after` from it. The level is that of the value since the onset — against the
   baseline (a trailing one taken before the onset), and against the detector's own before (the
   smaller of the two levels); when the short window lies wholly after the onset, its value
   (an absolute rule's rate at its 95 % lower bound) may raise the level (an onset placed early
   dilutes the value since it). An absolute rule whose window (with `min_calls` calls) and short
   window are both at a level holds it without an onset (a route broken for longer than the
   look-back); there, absolute rules on rates read the 95 % lower bound of the rate
   (`confident`), so a few errors among few calls are no level.
5. `critical` fires at once (a ratio rule on a rate only when its calls after the onset beat
   both the baseline's rate and the detector's before beyond `CRITICAL_P`; else it is a
   warning); `warning` needs a second evaluation in a row that confirms it (the observation
   carries `pending` in between) or a long and a short window at warning — the time since the
   onset when that is longer than the short window (without an onset, the rule's window), and
   the short window — no alert on one noisy minute.

A firing rule holds its level by the value since its onset (at most the window) against the
baseline before the onset, and resolves when that drops below `warning`.

Silent routes (`compare = "drop"`, metric calls_per_min): every route seen in the last day,
judged by baseline calls ÷ calls in the window when a Poisson test says so few calls are no
chance (p < `silence.SILENT_P`) and the baseline expects at least `min_calls` in the window; the
baseline is the lower of the chain's and the trailing one (traffic that is merely lower than a
day ago, on a weekend, is no outage). A stop is critical sooner: no call in the last m minutes
(at least 2) when the baseline rate makes that a one-in-a-million chance. A route with
no traffic in a rule's window, or judged silent, gets its other firing states resolved ("not
judged: no traffic since 14:05").

Stats come from `metrics.stats` (one source of numbers); rules sharing a window and filter share
one stats query per route; a baseline window several routes share is read once for all of
them (`StatsCache`), and baselines are re-read every 5 minutes (`BaselineMemo`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from scipy.stats import beta, binom
from sqlmodel import Session, select

from llm_incident.alerts.baselines import LEARNING, BaselinePick
from llm_incident.alerts.confirm import Confirmed, SeriesCache, confirm
from llm_incident.alerts.models import AlertState
from llm_incident.alerts.observation import (  # noqa: F401 - the names callers import from here
    CRITICAL, OK, PENDING, RANK, SHORT, STALE, WARNING, BaselineMemo, Evaluation, Observation,
    StatsCache, _aware, confident, judge, lower, ratio,
)
from llm_incident.alerts.silence import _stale, killed_routes, observe_silence
from llm_incident.alerts.rules import ALL_ROUTES, AlertRule
from llm_incident.events.routes import KnownRoute
from llm_incident.metrics.compare import fmt
from llm_incident.metrics.stats import WindowStats
from llm_incident.metrics.windows import Window, window_ending

SILENT_HORIZON = timedelta(days=1)  # routes seen this recently are watched for silence
SUSPECT_CALLS = 10  # calls the short window needs to raise a suspicion
GLANCE = timedelta(minutes=2)  # the shortest window that raises one
BASELINE_P = 1e-4   # a ratio rule's rate after the onset must beat the baseline's by this
CRITICAL_P = 1e-6   # ... and by this to be critical at once (else a warning, held twice)
SHORT_TEXT = f"{int(SHORT.total_seconds() // 60)}m"
CONFIRMED_Z = 1.0   # absolute rules: a confirmed rate after the onset at this lower bound


def routes_with_traffic(session: Session, since: datetime) -> list[str]:
    """Routes that sent an event at or after `since` (from the route registry; no event scan)."""
    stmt = select(KnownRoute.route).where(KnownRoute.last_seen >= since).order_by(KnownRoute.route)
    return list(session.exec(stmt))


def _seen(session: Session, since: datetime) -> dict[str, tuple[datetime, datetime]]:
    rows = session.exec(select(KnownRoute.route, KnownRoute.first_seen, KnownRoute.last_seen)
                        .where(KnownRoute.last_seen >= since))
    return {route: (_aware(first), _aware(last)) for route, first, last in rows}


def stored_states(session: Session) -> dict[tuple[str, str], AlertState]:
    return {(s.rule_id, s.route): s for s in session.exec(select(AlertState))}


def observe(ev: Evaluation, rule: AlertRule, route: str) -> Observation:
    """The rule's observation on one route at `ev.now`."""
    if rule.compare == "drop":
        return observe_silence(ev, rule, route)
    window = window_ending(ev.now, rule.window_span)
    now_stats = ev.stats.get(route, window, rule.filter)
    value = rule.watched.read(now_stats, rule)
    state = ev.states.get((rule.id, route))
    firing = state is not None and state.level != OK
    onset = _aware(state.onset) if firing and state.onset is not None else None

    def seen(level: str | None, reason: str = "", **more: Any) -> Observation:
        fields = dict(rule=rule, route=route, level=level, value=value, baseline=None,
                      calls=now_stats.calls, window=window, reason=reason, onset=onset)
        fields.update(more)
        return Observation(**fields)

    if now_stats.calls < (rule.min_calls if firing else rule.min_after):
        # a quiet window (a night at 5 calls/min) is still searched for a shift, which has its
        # own minimum counts; only the window's own judgements need `min_calls`
        return seen(None, f"{now_stats.calls} calls in {rule.window} (min "
                          f"{rule.min_calls if firing else rule.min_after})")
    if value is None:
        return seen(None, f"no {rule.label()} in the window")
    pick = BaselinePick(None, None, None, 0, "")
    if rule.uses_baseline:
        pick = ev.baseline(rule, route, window, onset)
        if pick.kind is None:
            return seen(None, pick.note, status=LEARNING)
    if firing:
        return _hold(ev, rule, route, window, now_stats, pick, state, seen)
    short_window = window_ending(ev.now, SHORT)
    short = ev.stats.get(route, short_window, rule.filter)
    short_value = rule.watched.read(short, rule)
    short_ok = short_value is not None and short.calls >= rule.min_after
    long_level = judge(rule, value, pick.value)
    short_level = judge(rule, short_value, pick.value) if short_ok else None
    pending = state is not None and state.pending == WARNING
    # suspected: the window, the short one or the last `GLANCE` at warning (the shorter ones
    # from SUSPECT_CALLS calls: at 3 calls/min the short window's p95 says more than the
    # window's, and at 60 a jump two minutes old is diluted in five); a pending warning is
    # always looked at again
    if RANK[long_level] < RANK[WARNING] and not pending and not any(
            _glance_at_warning(ev, rule, route, span, pick.value)
            for span in (SHORT, GLANCE)):
        return seen(OK, baseline=pick.value, basis=pick.note)
    # absolute rules: the level the long and the short window agree on (rates at their lower
    # bound) holds without an onset
    sustained = OK
    if rule.compare == "absolute" and now_stats.calls >= rule.min_calls:
        sustained = judge(rule, confident(rule, value, now_stats.calls), None)
        if short_ok:
            sustained = lower(sustained, judge(rule, confident(rule, short_value, short.calls),
                                               None))
    shifts, why = confirm(ev.series.get(route, rule.filter), rule, window.start)
    level, result = OK, dict(baseline=pick.value, basis=pick.note)
    found = None
    for shift in shifts:
        if shift.n_before < rule.min_calls:
            why = f"{shift.n_before} calls before the onset (min {rule.min_calls})"
            continue
        base = pick
        if pick.kind == "trailing":  # the baseline before the onset, not across it
            base = ev.baseline(rule, route, window, shift.onset)
            if base.kind is None:
                return seen(None, base.note, status=LEARNING, onset=shift.onset)
        longrun = _longrun(ev, rule, route, window, shift.onset, base)
        at = _shift_level(rule, shift, base.value, reference=longrun)
        if short_ok and short_window.start >= shift.onset:
            # the short window lies wholly after the onset: the level now, when the onset was
            # placed early (a few chance hits before the change dilute the value since it);
            # an absolute rule's rate at its lower bound (a 4 % error rate is no 5 % one
            # because one short window of it reached 5 %)
            now_value = confident(rule, short_value, short.calls)
            at = max(at, _shift_level(rule, shift, base.value, now_value, short.calls,
                                      reference=longrun),
                     key=RANK.__getitem__)
        if found is None or RANK[at] >= RANK[level]:
            found, level = shift, at
            result = dict(value=shift.after, baseline=base.value, calls=shift.n_after,
                          onset=shift.onset, basis=base.note, reason=shift.reason)
    if RANK[sustained] > RANK[level]:
        level, result = sustained, dict(result, value=value, calls=now_stats.calls,
                                        reason="no onset in the last 2 h", onset=None)
    if rule.compare == "absolute" and rule.watched.kind == "rate":
        tested, why_tested, note = _against_trailing(ev, rule, route, window, now_stats, value,
                                                     short if short_ok else None, short_value)
        if RANK[tested] > RANK[level]:
            level, result = tested, dict(result, value=value, calls=now_stats.calls,
                                         reason=why_tested, onset=None, basis=note)
    if level == OK:
        result["reason"] = f"not confirmed: {why}" if found is None else (
            f"{found.reason}: below the levels")
        return seen(OK, **result)
    # a long and a short window agree: the time since the onset when that is longer than the
    # short window (a younger shift waits for the next evaluation: the rule's window holding a
    # two-minute tail is no second look at it), or without an onset the rule's window
    if result.get("onset") is not None:
        held = found is not None and found.onset <= short_window.start
    else:
        held = long_level != OK
    agreed = held and short_level not in (None, OK)
    if level == WARNING and not agreed and not pending:
        return seen(OK, status=PENDING, pending=WARNING, **result)
    return seen(level, **result)


def _glance_at_warning(ev: Evaluation, rule: AlertRule, route: str, span: timedelta,
                       baseline: float | None) -> bool:
    """Is the value over the last `span`, with `SUSPECT_CALLS` calls (or the rule's
    `min_after` when fewer), at the rule's warning level?"""
    stats = ev.stats.get(route, window_ending(ev.now, span), rule.filter)
    value = rule.watched.read(stats, rule)
    return (value is not None and stats.calls >= min(SUSPECT_CALLS, rule.min_after)
            and RANK[judge(rule, value, baseline)] >= RANK[WARNING])


def _against_trailing(ev: Evaluation, rule: AlertRule, route: str, window: Window,
                      now_stats: WindowStats, value: float | None, short: WindowStats | None,
                      short_value: float | None) -> tuple[str, str, str]:
    """An absolute rule on a rate, without an onset: the level the window and the short one
    reach as measured (the lower of the two; the short one alone when its calls beat the
    trailing rate and the window's do not yet — a storm at 30 calls/min dilutes in 15 min), when
    those calls beat the route's own rate over the trailing span before the window beyond
    chance (`BASELINE_P`; critical at once only beyond `CRITICAL_P`). A storm of errors on a
    route that had few is news from a few minutes of it, sooner than the rate's lower bound
    reaches the level; a route whose rate was already near the level is judged by that bound."""
    trailing = ev.baseline(rule.model_copy(update={"baseline": "trailing"}), route, window)
    if trailing.kind is None or trailing.value is None or not 0 <= trailing.value < 1:
        return OK, "", ""
    # the trailing rate at its one-sided 95 % upper bound (Clopper-Pearson): 0 errors in 600
    # calls is no 0 % error rate, and a thin trailing span is no sure low one
    hits = round(trailing.value * trailing.calls)
    rate = float(beta.ppf(0.95, hits + 1, max(trailing.calls - hits, 1)))

    def beyond(stats: WindowStats, at: float | None) -> tuple[str, float]:
        if at is None or stats.calls <= 0:
            return OK, 1.0
        return _beyond_chance(judge(rule, at, None), at, stats.calls, rate)

    long_level, long_p = (beyond(now_stats, value) if now_stats.calls >= rule.min_calls
                          else (OK, 1.0))
    short_level, short_p = beyond(short, short_value) if short is not None else (OK, 1.0)
    level = lower(long_level, short_level) if short is not None else long_level
    if level == OK and short_level != OK and short.calls >= rule.min_calls:
        level = WARNING  # the short window alone, with min_calls: a warning, which must hold
    by_short = level == short_level != long_level  # the short window says it, not the long
    shown, span = (short_value, SHORT_TEXT) if by_short else (value, rule.window)
    return level, (f"{fmt(shown, 'rate')} over the last {span} vs "
                   f"{fmt(trailing.value, 'rate')} over {trailing.note.removeprefix('vs ')} "
                   f"(p={min(long_p, short_p):.1g})"), trailing.note


def _longrun(ev: Evaluation, rule: AlertRule, route: str, window: Window, onset: datetime,
             base: BaselinePick) -> float | None:
    """A rate rule's trailing rate before the onset (hours of the route's own traffic), when
    its baseline is another link: a reference for the chance test that neither a quiet window
    a day ago nor the detector's cut (biased low by where it splits) can make low."""
    if rule.compare != "ratio" or rule.watched.kind != "rate" or base.kind == "trailing":
        return None
    pick = ev.baseline(rule.model_copy(update={"baseline": "trailing"}), route, window, onset)
    return pick.value


def _shift_level(rule: AlertRule, shift: Confirmed, baseline: float | None,
                 after: float | None = None, calls: int | None = None,
                 reference: float | None = None) -> str:
    """The level of a confirmed shift as measured: its value after against the baseline, and
    for a ratio rule also against the detector's own before (the lower of the two). A ratio
    rule on a rate also needs the calls after the onset to be above the highest of the two
    rates and `reference` (`_longrun`) beyond chance (one-sided binomial p < `BASELINE_P`): a
    before that happens to be low — a search cut where the rate had dipped — or a baseline
    that does — a quiet 15 min a day ago at 1 % — makes a few chance hits look like a step.
    Critical, which fires at once, needs p < `CRITICAL_P` (with ~1,000 looks per route-week, a
    per-look 1e-4 is no per-week one); between the two it is a warning, which must hold. An
    absolute rule on a rate reads the rate after the onset at its lower bound (`CONFIRMED_Z`:
    1 error in 20 calls is no 5 % error rate). `after` over `calls` replace the shift's own
    (the short window's value)."""
    if after is None:  # an absolute rule's rate after the onset at its 84 % lower bound
        after = confident(rule, shift.after, shift.n_after, z=CONFIRMED_Z)
    calls = shift.n_after if calls is None else calls
    level = judge(rule, after, baseline)
    if rule.compare == "ratio":
        level = lower(level, judge(rule, after, shift.before))
        if rule.watched.kind == "rate" and baseline is not None and 0 < baseline < 1 and (
                level != OK and calls > 0):
            rate = min(max(baseline, shift.before, reference or 0.0), 1.0)
            level, _p = _beyond_chance(level, after, calls, rate)
    return level


def _beyond_chance(level: str, after: float, calls: int, rate: float) -> tuple[str, float]:
    """`level` as far as `after` over `calls` beats `rate` beyond chance (one-sided binomial):
    none past `BASELINE_P`, at most a warning past `CRITICAL_P`; and the p-value."""
    p = float(binom.sf(round(after * calls) - 1, calls, rate))
    if p >= BASELINE_P:
        return OK, p
    if p >= CRITICAL_P and level == CRITICAL:
        return WARNING, p
    return level, p


def _hold(ev: Evaluation, rule: AlertRule, route: str, window: Window, now_stats: WindowStats,
          pick: BaselinePick, state: AlertState, seen: Any) -> Observation:
    """A firing rule: the value since its onset (at most the window) against the baseline. It
    rises only when sure (an absolute rule on a rate: at its 95 % lower bound, and without an
    onset over the short window too, as it fired), and falls only when the value itself does —
    no flapping at a level's edge."""
    onset = _aware(state.onset) if state.onset is not None else None
    stats = now_stats
    if onset is not None and window.start < onset < ev.now:
        since = ev.stats.get(route, Window(onset, ev.now), rule.filter)
        if since.calls >= rule.min_after:
            stats = since
    value = rule.watched.read(stats, rule)
    if value is None:
        return seen(None, f"no {rule.label()} since the onset")
    sure = judge(rule, confident(rule, value, stats.calls), pick.value)
    if rule.compare == "absolute" and onset is None:
        short = ev.stats.get(route, window_ending(ev.now, SHORT), rule.filter)
        short_value = confident(rule, rule.watched.read(short, rule), short.calls)
        if short_value is not None and short.calls >= rule.min_after:
            sure = lower(sure, judge(rule, short_value, None))
    plain = judge(rule, value, pick.value)
    level = sure if RANK[sure] > RANK[state.level] else (
        plain if RANK[plain] < RANK[state.level] else state.level)
    return seen(level, value=value, baseline=pick.value, calls=stats.calls, basis=pick.note)


def observe_all(session: Session, rules: tuple[AlertRule, ...] | list[AlertRule],
                now: datetime, *, states: dict[tuple[str, str], AlertState] | None = None,
                memo: BaselineMemo | None = None) -> list[Observation]:
    """Every rule on every route it covers (`*`: routes with traffic in its window; drop rules:
    routes seen in the last day), then the stale firing states resolved. `memo` keeps baselines
    across evaluations (the scheduler's job passes one)."""
    ev = Evaluation(session, now, StatsCache(session, now), SeriesCache(session, now),
                    stored_states(session) if states is None else states,
                    _seen(session, now - SILENT_HORIZON), memo or BaselineMemo(),
                    killed_routes(session))
    observations: list[Observation] = []
    for rule in sorted(rules, key=lambda r: r.compare != "drop"):  # silence first
        if rule.route != ALL_ROUTES:
            routes = [rule.route]
        elif rule.compare == "drop":
            routes = sorted(ev.seen)
        else:
            since = now - rule.window_span
            routes = sorted(r for r, (_first, last) in ev.seen.items() if last >= since)
        observations.extend(observe(ev, rule, route) for route in routes)
    silent = {o.route: o for o in observations if o.rule.compare == "drop"}
    covered = {(o.rule.id, o.route) for o in observations}
    by_id = {rule.id: rule for rule in rules}
    for (rule_id, route), state in sorted(ev.states.items()):
        rule = by_id.get(rule_id)
        if rule is None or rule.compare == "drop" or state.level == OK:
            continue
        stale = _stale(ev, rule, route, state, silent.get(route))
        if stale is None:
            continue
        if (rule_id, route) in covered:
            observations = [stale if (o.rule.id, o.route) == (rule_id, route) else o
                            for o in observations]
        else:
            observations.append(stale)
    return observations


def series(session: Session, rule: AlertRule, route: str, now: datetime,
           points: int = 12) -> list[float | None]:
    """The rule's metric over the last `points` windows, oldest first (for a sparkline)."""
    cache = StatsCache(session, now)
    span = rule.window_span
    values = []
    for back in range(points - 1, -1, -1):
        window = window_ending(now - span * back, span)
        values.append(rule.watched.read(cache.get(route, window, rule.filter), rule))
    return values
