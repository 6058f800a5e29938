"""The filter language without a database: grammar, precedence, literals, types, errors, fuzzing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from llm_incident.metrics.filter_ast import And, Comparison, Not, Or, Relative
from llm_incident.metrics.filters import (
    FIELD_NAMES, MAX_FILTER_CHARS, FilterError, compile_filter, format_filter, parse_filter,
)
from tests.filter_strategies import filters

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=timezone.utc)
DIALECTS = (sqlite.dialect(), postgresql.psycopg.dialect())


def cmp(field: str, op: str, *values, path: tuple[str, ...] = ()) -> Comparison:
    return Comparison(field, path, op, tuple(values))


def error_of(text: str) -> FilterError:
    with pytest.raises(FilterError) as info:
        parse_filter(text)
    return info.value


# ------------------------------------------------------------------------------------ grammar

def test_every_operator_parses_to_a_comparison():
    assert parse_filter('route = "a"') == cmp("route", "=", "a")
    assert parse_filter('route != "a"') == cmp("route", "!=", "a")
    assert parse_filter("tokens_out > 1") == cmp("tokens_out", ">", 1)
    assert parse_filter("tokens_out >= 1") == cmp("tokens_out", ">=", 1)
    assert parse_filter("tokens_out < 1") == cmp("tokens_out", "<", 1)
    assert parse_filter("tokens_out <= 1") == cmp("tokens_out", "<=", 1)
    assert parse_filter('model contains "gpt"') == cmp("model", "contains", "gpt")
    assert parse_filter('status in ("ok", "error")') == cmp("status", "in", "ok", "error")
    assert parse_filter("region exists") == cmp("region", "exists")


def test_keywords_are_case_insensitive_and_spacing_is_free():
    upper = parse_filter('NOT route = "a" AND model IN ("x") OR region EXISTS OR model CONTAINS "g"'
                         )
    lower = parse_filter('not route="a" and model in("x") or region exists or model contains "g"')
    assert upper == lower
    assert parse_filter("contains_banned = TRUE") == cmp("contains_banned", "=", True)
    assert parse_filter("model = NULL") == cmp("model", "=", None)


def test_and_binds_tighter_than_or():
    a, b, c = (cmp("route", "=", x) for x in "abc")
    assert parse_filter('route = "a" OR route = "b" AND route = "c"') == Or((a, And((b, c))))
    assert parse_filter('route = "a" AND route = "b" OR route = "c"') == Or((And((a, b)), c))


def test_not_binds_tighter_than_and():
    a, b = cmp("route", "=", "a"), cmp("route", "=", "b")
    assert parse_filter('NOT route = "a" AND route = "b"') == And((Not(a), b))
    assert parse_filter('NOT route = "a" OR route = "b"') == Or((Not(a), b))
    assert parse_filter('NOT NOT route = "a"') == Not(Not(a))


def test_parentheses_override_precedence():
    a, b, c = (cmp("route", "=", x) for x in "abc")
    assert parse_filter('(route = "a" OR route = "b") AND route = "c"') == And((Or((a, b)), c))
    assert parse_filter('NOT (route = "a" OR route = "b")') == Not(Or((a, b)))
    assert parse_filter('((route = "a"))') == a


def test_the_product_example_groups_as_documented():
    text = ('status = "flagged" OR contains_banned = true OR tokens_out > 2000 '
            'AND metadata.route = "support.reply"')
    assert format_filter(parse_filter(text)) == (
        'status = "flagged" OR contains_banned = true OR '
        '(tokens_out > 2000 AND metadata.route = "support.reply")')


def test_metadata_keys_may_be_nested_and_use_dashes_and_keywords():
    assert parse_filter('metadata.user.plan = "pro"') == cmp(
        "metadata", "=", "pro", path=("user", "plan"))
    assert parse_filter("metadata.retry-count > 2") == cmp(
        "metadata", ">", 2, path=("retry-count",))
    assert parse_filter("metadata.and exists") == cmp("metadata", "exists", path=("and",))


# ----------------------------------------------------------------------------------- literals

@pytest.mark.parametrize("text, value", [
    (r'route = "a \"quoted\" word"', 'a "quoted" word'),
    (r"route = 'it\'s'", "it's"),
    (r"route = 'say \"hi\"'", 'say "hi"'),
    ("route = 'double \" inside single'", 'double " inside single'),
    (r'route = "back\\slash"', "back\\slash"),
    (r'route = "tab\tnew\nline\r"', "tab\tnew\nline\r"),
    (r'route = "caf\u00e9"', "café"),
    ('route = ""', ""),
    ("route = 'ünïcødé ✓'", "ünïcødé ✓"),
])
def test_strings_take_either_quote_and_backslash_escapes(text, value):
    assert parse_filter(text).values == (value,)


@pytest.mark.parametrize("text, value", [
    ("tokens_out = 42", 42), ("tokens_out = -42", -42), ("duration_ms > 1.5", 1.5),
    ("duration_ms > -0.25", -0.25), ("cost_usd < 1e-3", 0.001), ("cost_usd < 2E+2", 200.0),
])
def test_numbers_are_ints_or_floats_and_may_be_negative(text, value):
    (parsed,) = parse_filter(text).values
    assert parsed == value and type(parsed) is type(value)


def test_text_fields_take_numbers_as_the_text_written():
    assert parse_filter("error_code = 429").values == ("429",)
    assert parse_filter("prompt_version = 2.10").values == ("2.10",)
    assert parse_filter("error_code in (429, 503)").values == ("429", "503")


@pytest.mark.parametrize("text, relative", [
    ("ts > now - 30m", Relative(-1, 30, "m")), ("ts > now - 45s", Relative(-1, 45, "s")),
    ("ts > now - 1.5h", Relative(-1, 1.5, "h")), ("ts > now-2d", Relative(-1, 2, "d")),
    ("ts < now + 1w", Relative(1, 1, "w")), ("ts <= now", Relative(1, 0, "s")),
])
def test_relative_times(text, relative):
    assert parse_filter(text).values == (relative,)


def test_relative_times_resolve_against_the_given_now():
    assert Relative(-1, 30, "m").resolve(NOW) == NOW - timedelta(minutes=30)
    params = compile_filter("ts > now - 2h", now=NOW).compile().params
    assert list(params.values()) == [NOW - timedelta(hours=2)]


def test_absolute_timestamps_are_rfc3339_with_an_offset():
    (value,) = parse_filter('ts >= "2026-11-26T16:00:00+02:00"').values
    assert value == datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)
    assert parse_filter("ts < '2026-11-26T14:00:00Z'").values == (value,)


# ------------------------------------------------------------------------------------- errors

@pytest.mark.parametrize("text, column, message", [
    ("tokens_out > ", 14, "expected a value after '>'"),
    ("tokens_out > AND", 14, "expected a value after '>', found 'AND'"),
    ('route = "x" AND', 16, "expected a field name, NOT or '(', found the end of the filter"),
    ('(route = "x"', 13, "expected ')' to close the '(' at column 1, found the end of the filter"),
    ('route = "x")', 12, "unmatched ')'"),
    ('route = "x" model = "y"', 13, "expected AND, OR or the end of the filter, found 'model'"),
    ('route "x"', 7, "expected an operator after 'route'"),
    ('route = "open', 9, 'unterminated string: the " here is never closed'),
    (r'route = "bad \q"', 14, "unknown escape '\\q'"),
    ("route = flagged", 9, "put text in quotes: \"flagged\""),
    ("route # 1", 7, "unexpected character '#'"),
    ('route ! "x"', 7, "did you mean '!='?"),
    ("status in 'ok'", 11, "expected '(' after 'in'"),
    ("status in ('ok' 'error')", 17, "expected ',' or ')' in the list"),
    ("status in ()", 12, "expected a value after '('"),
    ("ts > now - 30", 12, "expected a duration like 30m after 'now -'"),
    ("ts > now - 30min", 14, "unexpected 'min' after the number 30"),
    ("ts > 30m", 6, "a duration needs 'now -' in front"),
    ("", 1, "empty filter"),
    ("   ", 1, "empty filter"),
    ("metadata. = 1", 10, "expected a key after 'metadata.'"),
    ("model not in ('a')", 7, "put NOT before the field"),
])
def test_syntax_errors_say_what_was_expected_and_where(text, column, message):
    err = error_of(text)
    assert err.position == column
    assert message in err.message
    assert str(err).startswith(f"column {column}: ")


def test_the_issue_example_message_exactly():
    assert str(error_of("tokens_out > ")) == "column 14: expected a value after '>'"


@pytest.mark.parametrize("text, column, message", [
    ('tokens_out > "2000"', 14, "tokens_out is a number; expected a number, found \"2000\""),
    ("route > 5", 9, "route is text, so '>' does not apply to 5"),
    ('route >= "a"', 10, "route is text, so '>=' does not apply"),
    ("route = true", 9, "route is text; expected a quoted string, found true"),
    ("contains_banned = 1", 19, "contains_banned is true/false; expected true or false"),
    ("contains_banned > false", 19, "does not apply"),
    ("tokens_out contains '5'", 12, "contains only works on text fields and metadata"),
    ("metadata.x contains 5", 21, "contains needs text in quotes"),
    ("metadata.x > 'a'", 14, "'>' on metadata.x needs a number"),
    ("tokens_out > null", 14, "null only works with = and !="),
    ("tokens_out > now", 14, "'now' only works with ts"),
    ("ts > 5", 6, "ts is a time; expected an RFC 3339 timestamp"),
    ("ts > 'yesterday'", 6, "is not an RFC 3339 timestamp"),
    ("ts > '2026-11-26T14:00:00'", 6, "needs a UTC offset"),
    ("ts > now - 99999w", 6, "longer than 10 years"),
    ("tokens_out = 99999999999999999999", 14, "out of range"),
    ("status in ('ok', 5, true)", 21, "status is text; expected a quoted string, found true"),
])
def test_type_errors_point_at_the_value(text, column, message):
    err = error_of(text)
    assert (err.position, message in err.message) == (column, True), err


def test_unknown_fields_list_every_valid_field_and_suggest_a_near_one():
    err = error_of('rout = "x" AND model = "y"')
    assert err.position == 1
    assert err.message.startswith("unknown field 'rout'; did you mean route? valid fields: ")
    for name in FIELD_NAMES:
        assert name in err.message
    later = error_of('route = "x" AND colour = "red"')
    assert later.position == 17 and "valid fields: event_id, ts, route" in later.message


def test_metadata_needs_a_key_and_fields_are_case_sensitive():
    assert "metadata needs a key" in error_of("metadata exists").message
    assert "did you mean route?" in error_of('Route = "x"').message


def test_overlong_and_deeply_nested_filters_are_refused_cleanly():
    assert "longer than" in error_of('route = "' + "x" * MAX_FILTER_CHARS + '"').message
    deep = "(" * 200 + 'route = "x"' + ")" * 200
    assert "nested" in error_of(deep).message
    assert "nested" in error_of("NOT " * 200 + 'route = "x"').message


# ----------------------------------------------------------------------- compiling and fuzzing

def test_values_are_bound_parameters_never_sql_text():
    hostile = "x' OR 1=1 --"
    expr = compile_filter(f'route = "{hostile}" OR metadata.k = "{hostile}"', now=NOW)
    for dialect in DIALECTS:
        compiled = expr.compile(dialect=dialect)
        assert "1=1" not in str(compiled)
        assert hostile in compiled.params.values()


def test_compile_accepts_text_or_a_parsed_tree():
    tree = parse_filter('route = "a" AND ts > now - 5m')
    left = compile_filter(tree, now=NOW).compile(dialect=DIALECTS[0])
    right = compile_filter('route = "a" AND ts > now - 5m', now=NOW).compile(dialect=DIALECTS[0])
    assert (str(left), left.params) == (str(right), right.params)


TOKENS = [
    "route", "tokens_out", "ts", "error_code", "contains_banned", "metadata.k", "metadata.a.b",
    "status", "nope", "metadata", "=", "!=", ">", ">=", "<", "<=", "!", "contains", "in",
    "exists", "AND", "OR", "NOT", "not", "(", ")", ",", '"x"', "'y'", '"', "'", "\\", "5", "-3",
    "2.5", "1e9", "1e999", "true", "false", "null", "now", "-", "+", "30m", "7q", "2026", ".",
    '"2026-11-26T14:00:00Z"', "%", "_", "#", "é",
]


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80))
def test_random_text_only_ever_raises_filter_error(text):
    try:
        parse_filter(text)
    except FilterError as err:
        assert 1 <= err.position <= len(text) + 1


@settings(max_examples=800, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=14), st.sampled_from([" ", ""]))
def test_token_soup_parses_and_compiles_or_raises_filter_error(tokens, sep):
    text = sep.join(tokens)
    try:
        tree = parse_filter(text)
    except FilterError as err:
        assert 1 <= err.position <= len(text) + 1
        return
    assert parse_filter(format_filter(tree)) == tree
    expr = compile_filter(tree, now=NOW)
    for dialect in DIALECTS:
        expr.compile(dialect=dialect)


@settings(max_examples=300, deadline=None)
@given(filters())
def test_valid_filters_round_trip_through_their_canonical_text_and_compile(text):
    tree = parse_filter(text)
    canonical = format_filter(tree)
    assert parse_filter(canonical) == tree
    assert format_filter(parse_filter(canonical)) == canonical
    expr = compile_filter(tree, now=NOW)
    for dialect in DIALECTS:
        expr.compile(dialect=dialect)
