"""Reading README.md and docs/*.md for the docs check: sections, table rows, code spans and fenced
lines, and the commands, flags and paths written in them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.docs_inventory import METHODS, ROOT

Docs = dict[str, str]  # path relative to the repository → text


def read_docs() -> Docs:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in pages}


SEGMENT = r"(?:\{[^}]*\}|[A-Za-z0-9_.~-]+)"
V1_PATH = re.compile(rf"(?<![A-Za-z_])/v1(?:/{SEGMENT})+")
METHOD_PATH = re.compile(rf"\b({'|'.join(METHODS)}) (/(?:{SEGMENT}(?:/{SEGMENT})*)?)")
COMMAND_MENTION = re.compile(r"(?<![\w/@.'\"-])llm-incident(?![\w\[.'/-])")
FLAG = re.compile(r"^-{1,2}[A-Za-z][\w-]*")
HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
SPAN = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class Code:
    """A piece of code in a page: an inline span or a line of a fenced block."""

    page: str
    line: int
    text: str
    section: str  # the heading it is under


@dataclass(frozen=True)
class Row:
    """A table row: its first cell and the line it is on."""

    page: str
    line: int
    first_cell: str
    section: str
    cells: tuple[str, ...] = ()


def sections(text: str) -> list[tuple[str, int, list[tuple[int, str]]]]:
    """(heading, its line, [(line number, line)…] up to the next heading); fences respected."""
    result: list[tuple[str, int, list[tuple[int, str]]]] = [("", 0, [])]
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        heading = None if fenced else HEADING.match(line)
        if heading:
            result.append((heading.group(2).strip(), number, []))
        else:
            result[-1][2].append((number, line))
    return result


def code_pieces(page: str, text: str) -> list[Code]:
    """Inline spans (a span may run over lines) and fenced lines (`\\` continuations joined)."""
    pieces: list[Code] = []
    for heading, heading_line, lines in sections(text):
        if heading:
            pieces += [Code(page, heading_line, " ".join(m.group(1).split()), heading)
                       for m in SPAN.finditer(heading)]
        fenced, paragraph, start, pending = False, [], 0, ""
        for number, line in [*lines, (0, "")]:
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            if fenced:
                pending = (pending + " " + line.strip()) if pending else line
                if pending.endswith("\\"):
                    pending = pending[:-1]
                    continue
                pieces.append(Code(page, number, pending, heading))
                pending = ""
                continue
            if line.strip():
                start = start or number
                paragraph.append(line.replace("\\|", "|"))
                continue
            joined = "\n".join(paragraph)
            for match in SPAN.finditer(joined):
                where = start + joined[:match.start()].count("\n")
                pieces.append(Code(page, where, " ".join(match.group(1).split()), heading))
            paragraph, start = [], 0
    return pieces


def table_rows(page: str, text: str) -> list[Row]:
    rows = []
    for heading, _, lines in sections(text):
        for number, line in lines:
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())]
            if not line.lstrip().startswith("|") or len(cells) < 3 or set(cells[1]) <= set("-: "):
                continue
            if cells[1] in ("option", "variable", "endpoint", "command"):  # header rows
                continue
            rows.append(Row(page, number, cells[1].replace("\\|", "|"), heading, tuple(cells[1:-1])))
    return rows


def first_span(text: str) -> str | None:
    match = SPAN.search(text)
    return match.group(1) if match else None


def resolve(tokens: list[str], tree) -> tuple[tuple[str, ...], list[str], str | None]:
    """Words naming a command → (its path, the tokens after it, an unknown subcommand word)."""
    path: tuple[str, ...] = ()
    rest = list(tokens)
    while rest and (*path, rest[0]) in tree:
        path = (*path, rest.pop(0))
    unknown = None
    if rest and re.fullmatch(r"[a-z][a-z-]*", rest[0]) and getattr(tree[path], "commands", None):
        unknown = rest[0]  # a word after a group that is none of its commands
    return path, rest, unknown


def mention_tokens(text: str) -> list[list[str]]:
    """For each `llm-incident …` in a piece of code: the words after it, up to `|`, `&&`, `;`, `#`."""
    found = []
    for match in COMMAND_MENTION.finditer(text):
        words = []
        for word in text[match.end():].split():
            if word in ("|", "&&", ";", "#", "||") or word.startswith("#"):
                break
            words.append(word)
        found.append(words)
    return found


def flags_in(tokens: list[str]) -> list[str]:
    flags = []
    for token in tokens:
        bare = token.strip("[](),'\"")
        match = FLAG.match(bare)
        if match and not bare.startswith("---"):
            flags.append(match.group(0))
    return flags


def path_matches(doc_path: str, code_path: str, *, literal_params: bool) -> bool:
    """Same segments; a `{param}` in the code takes any doc segment (a literal only when asked)."""
    doc, code = doc_path.rstrip("/").split("/"), code_path.rstrip("/").split("/")
    if len(doc) != len(code):
        return False
    for d, c in zip(doc, code, strict=True):
        if c.startswith("{"):
            if not d.startswith("{") and not literal_params:
                return False
        elif d != c:
            return False
    return True


def command_sections(docs: Docs, page: str, tree) -> dict[tuple[str, ...], tuple[str, list[Row]]]:
    """Command path → (its heading, its table rows), from the headings of `page`."""
    text = docs.get(page, "")
    rows = table_rows(page, text)
    found: dict[tuple[str, ...], tuple[str, list[Row]]] = {}
    for heading, _, _ in sections(text):
        span = first_span(heading)
        if not span or not COMMAND_MENTION.match(span):
            continue
        path, _, unknown = resolve(span.split()[1:], tree)
        if unknown is None:
            found[path] = (heading, [r for r in rows if r.section == heading])
    return found


def section_rows(docs: Docs, page: str, heading: str) -> list[Row]:
    return [r for r in table_rows(page, docs.get(page, "")) if r.section == heading]


def cell_words(cell: str) -> list[str]:
    return [w.strip(",") for span in SPAN.findall(cell) for w in span.split()]


def command_name(path: tuple[str, ...]) -> str:
    return " ".join(("llm-incident", *path))

