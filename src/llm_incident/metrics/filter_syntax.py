"""Tokens and raw syntax of the event filter language (see `llm_incident.metrics.filters`).

A hand-written lexer and recursive-descent parser: every token carries its 1-based column, so
every error can say where it happened. Field names and value types are checked by
`filter_fields`; this module only knows the shape of the text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llm_incident.metrics.filter_ast import UNIT_SECONDS, And, FilterError, Node, Not, Or

MAX_DEPTH = 50  # nested parentheses / NOTs; keeps recursion and SQL expression depth bounded
KEYWORDS = {"and", "or", "not", "in", "contains", "exists", "true", "false", "null", "now"}


@dataclass(frozen=True)
class Token:
    kind: str  # word, string, number, duration, op, ( ) , + - end
    text: str  # the source text of the token
    pos: int  # 1-based column of its first character
    value: Any = None  # decoded string / number / (amount, unit) / dotted field path


def describe(token: Token) -> str:
    """How an error message names a token."""
    if token.kind == "end":
        return "the end of the filter"
    if token.kind == "string":
        return f"the string {token.text}"
    return f"'{token.text}'"


# ---------------------------------------------------------------------------------------- lexer

_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEY = re.compile(r"[\w-]+")
_TRAILING = re.compile(r"[\w.]+")
_ESCAPES = {
    "\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f",
}
_ESCAPE_HELP = "\\\\ \\\" \\' \\n \\t \\r \\b \\f or \\uXXXX"


def tokenize(text: str) -> list[Token]:
    """The tokens of `text`, ending with an `end` token; FilterError on anything unreadable."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "(),+-":
            tokens.append(Token(ch, ch, i + 1))
            i += 1
        elif ch in "=!<>":
            op = text[i : i + 2] if text[i : i + 2] in ("!=", ">=", "<=") else ch
            if op == "!":
                raise FilterError("unexpected '!'; did you mean '!='?", i + 1)
            tokens.append(Token("op", op, i + 1))
            i += len(op)
        elif ch in "\"'":
            token, i = _string(text, i)
            tokens.append(token)
        elif ch.isascii() and ch.isdigit():
            token, i = _number(text, i)
            tokens.append(token)
        elif _WORD.match(text, i):
            token, i = _word(text, i)
            tokens.append(token)
        else:
            raise FilterError(f"unexpected character {ch!r}", i + 1)
    tokens.append(Token("end", "", n + 1))
    return tokens


def _string(text: str, start: int) -> tuple[Token, int]:
    quote, out, i = text[start], [], start + 1
    while i < len(text):
        ch = text[i]
        if ch == quote:
            return Token("string", text[start : i + 1], start + 1, "".join(out)), i + 1
        if ch == "\\":
            esc = text[i + 1 : i + 2]
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
                i += 2
                continue
            if esc == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", text[i + 2 : i + 6]):
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            if not esc:
                break  # a backslash as the last character: the string is never closed
            raise FilterError(f"unknown escape '\\{esc}' in a string; use {_ESCAPE_HELP}", i + 1)
        out.append(ch)
        i += 1
    raise FilterError(f"unterminated string: the {quote} here is never closed", start + 1)


def _number(text: str, start: int) -> tuple[Token, int]:
    match = _NUMBER.match(text, start)
    assert match is not None
    raw, end = match.group(), match.end()
    rest = _TRAILING.match(text, end)
    if rest is None:
        if len(raw) > 40:
            raise FilterError(f"number {raw[:20]}... is too long", start + 1)
        value: int | float = float(raw) if any(c in raw for c in ".eE") else int(raw)
        return Token("number", raw, start + 1, value), end
    suffix = rest.group()
    if suffix in UNIT_SECONDS and "e" not in raw.lower():
        return Token("duration", raw + suffix, start + 1, (float(raw), suffix)), rest.end()
    raise FilterError(
        f"unexpected {suffix!r} after the number {raw}; durations use s, m, h, d or w (e.g. 30m)",
        end + 1,
    )


def _word(text: str, start: int) -> tuple[Token, int]:
    match = _WORD.match(text, start)
    assert match is not None
    parts, i = [match.group()], match.end()
    while i < len(text) and text[i] == ".":
        key = _KEY.match(text, i + 1)
        if key is None:
            raise FilterError(
                f"expected a key after '{text[start:i + 1]}' (letters, digits, _ or -)", i + 2
            )
        parts.append(key.group())
        i = key.end()
    return Token("word", text[start:i], start + 1, tuple(parts)), i


# ------------------------------------------------------------------------------------ raw tree


@dataclass(frozen=True)
class RawValue:
    """A literal as written: kind is string, number, bool, null or now."""

    kind: str
    value: Any  # str | int | float | bool | None | (sign, amount, unit) for now ± duration
    text: str
    pos: int


Checker = Callable[[Token, Token, list[RawValue]], Node]


class Parser:
    """Recursive descent over the tokens; `check(field, op, values)` builds each comparison."""

    def __init__(self, text: str, check: Checker) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.check = check

    # helpers
    def peek(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        token = self.tokens[self.i]
        if token.kind != "end":
            self.i += 1
        return token

    def enter(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError(f"filter is nested more than {MAX_DEPTH} levels deep", token.pos)

    def at_keyword(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "word" and token.text.lower() == word

    # grammar
    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise FilterError("empty filter: expected a field name, NOT or '('", 1)
        node = self.or_expr()
        token = self.peek()
        if token.kind == ")":
            raise FilterError("unmatched ')'", token.pos)
        if token.kind != "end":
            raise FilterError(f"expected AND, OR or the end of the filter, found {describe(token)}",
                              token.pos)
        return node

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.at_keyword("or"):
            self.next()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while self.at_keyword("and"):
            self.next()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_expr(self) -> Node:
        if self.at_keyword("not"):
            self.enter(self.next())
            node = Not(self.not_expr())
            self.depth -= 1
            return node
        return self.primary()

    def primary(self) -> Node:
        token = self.next()
        if token.kind == "(":
            self.enter(token)
            node = self.or_expr()
            self.depth -= 1
            close = self.next()
            if close.kind != ")":
                raise FilterError(
                    f"expected ')' to close the '(' at column {token.pos}, found {describe(close)}",
                    close.pos,
                )
            return node
        if token.kind == "word" and token.text.lower() not in KEYWORDS:
            return self.comparison(token)
        raise FilterError(f"expected a field name, NOT or '(', found {describe(token)}", token.pos)

    def comparison(self, field: Token) -> Node:
        op = self.next()
        word = op.text.lower() if op.kind == "word" else ""
        if op.kind == "op":
            return self.check(field, op, [self.value(op)])
        if word == "contains":
            return self.check(field, op, [self.value(op)])
        if word == "exists":
            return self.check(field, op, [])
        if word == "in":
            return self.check(field, op, self.value_list(op))
        hint = ""
        if word == "not":
            hint = f"; to negate, put NOT before the field: NOT {field.text} ..."
        raise FilterError(
            f"expected an operator after '{field.text}' (= != > >= < <= contains in exists), "
            f"found {describe(op)}{hint}",
            op.pos,
        )

    def value_list(self, op: Token) -> list[RawValue]:
        opening = self.next()
        if opening.kind != "(":
            raise FilterError(f"expected '(' after '{op.text}', found {describe(opening)}",
                              opening.pos)
        values = [self.value(opening)]
        while True:
            token = self.next()
            if token.kind == ")":
                return values
            if token.kind != ",":
                raise FilterError(f"expected ',' or ')' in the list, found {describe(token)}",
                                  token.pos)
            values.append(self.value(token))

    def value(self, after: Token) -> RawValue:
        token = self.next()
        if token.kind == "string":
            return RawValue("string", token.value, token.text, token.pos)
        if token.kind == "number":
            return RawValue("number", token.value, token.text, token.pos)
        if token.kind == "-" and self.peek().kind == "number":
            number = self.next()
            return RawValue("number", -number.value, "-" + number.text, token.pos)
        if token.kind == "word":
            word = token.text.lower()
            if word in ("true", "false"):
                return RawValue("bool", word == "true", word, token.pos)
            if word == "null":
                return RawValue("null", None, word, token.pos)
            if word == "now":
                return self.relative(token)
            raise FilterError(
                f"expected a value after '{after.text}', found '{token.text}'; "
                f'put text in quotes: "{token.text}"',
                token.pos,
            )
        if token.kind == "duration":
            raise FilterError(f"a duration needs 'now -' in front: now - {token.text}", token.pos)
        found = "" if token.kind == "end" else f", found {describe(token)}"
        raise FilterError(f"expected a value after '{after.text}'{found}", token.pos)

    def relative(self, now: Token) -> RawValue:
        sign = self.peek()
        if sign.kind not in ("+", "-"):
            return RawValue("now", (1, 0.0, "s"), "now", now.pos)
        self.next()
        amount = self.next()
        if amount.kind != "duration":
            raise FilterError(
                f"expected a duration like 30m after 'now {sign.text}' (units s m h d w), "
                f"found {describe(amount)}",
                amount.pos,
            )
        number, unit = amount.value
        sign_value = -1 if sign.kind == "-" else 1
        text = f"now {sign.text} {amount.text}"
        return RawValue("now", (sign_value, number, unit), text, now.pos)
