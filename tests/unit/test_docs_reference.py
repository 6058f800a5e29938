"""The reference in docs/ against the code, both ways.

From the code: every `llm-incident` command and option (click), environment variable (Settings),
HTTP endpoint (the app's routes and OpenAPI document) and slash-command verb (`VERBS`) has its
entry — a section or a table row in the page that holds that kind of thing. From the docs
(README.md and docs/*.md): every command, option, variable and endpoint they name exists.
Each test reports every miss at once, with the file (and line or section) to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from llm_incident.cli import main
from llm_incident.commands.verbs import VERBS
from llm_incident.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMMANDS_PAGE = "docs/commands.md"
CONFIG_PAGE = "docs/configuration.md"
API_PAGE = "docs/http-api.md"
ENDPOINTS_HEADING = "Endpoints"
VERBS_HEADING = "Slash commands and the console"
CONSOLE_HEADING = "Console only"
LEAVE_WORDS = ("quit", "exit")  # the console loop's own words (console/shell.py)
# variables of libraries we use, named in the docs on purpose (a warning not to set them)
THIRD_PARTY_VARIABLES = {"SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"}
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")

Docs = dict[str, str]  # path relative to the repository → text


def read_docs() -> Docs:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in pages}


# ---- what the code defines -------------------------------------------------------------------

def command_tree() -> dict[tuple[str, ...], click.Command]:
    """Command path (() for `llm-incident` itself) → command, groups included."""
    found: dict[tuple[str, ...], click.Command] = {}

    def walk(path: tuple[str, ...], command: click.Command) -> None:
        found[path] = command
        for name, sub in getattr(command, "commands", {}).items():
            if not sub.hidden:
                walk((*path, name), sub)

    walk((), main)
    return found


def option_flags(path: tuple[str, ...], command: click.Command) -> list[str]:
    """The flags of a command's options; `--help` only for the top command (click adds it to all)."""
    flags = [flag for param in command.params if isinstance(param, click.Option) and not param.hidden
             for flag in (*param.opts, *param.secondary_opts)]
    if not path:
        flags += sorted(help_flags())
    return flags


def help_flags() -> set[str]:
    """`-h`, `--help`: the top command's help names, which its subcommands inherit."""
    help_option = main.get_help_option(click.Context(main, **main.context_settings))
    return set(help_option.opts) if help_option else set()


def all_flags(command: click.Command) -> set[str]:
    return set(option_flags(("any",), command)) | help_flags()


def bench_flags() -> set[str]:
    """Options of the bench scripts (docs name some, e.g. `--backend sqlite`)."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "bench").glob("*.py"))
    return set(re.findall(r"[\"'](--[a-z][\w-]*)[\"']", text))


def console_verbs() -> dict[str, tuple[str, str]]:
    """The console's own commands beside the slash commands (`postmortem`, `export`)."""
    from llm_incident.console import local

    return local.CONSOLE_VERBS


def environment_variables() -> dict[str, str]:
    """Variable → Settings field, from each field's alias (or the env prefix + its name)."""
    prefix = Settings.model_config.get("env_prefix", "")
    names: dict[str, str] = {}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        if choices:
            for choice in choices:
                names[str(choice).upper()] = field_name
        else:
            names[(str(alias) if alias else prefix + field_name).upper()] = field_name
    return names


def build_app(tmp_path: Path):
    """The real app with Slack on (HTTP mode, so `POST /slack/events` is mounted); nothing starts."""
    from llm_incident.app import create_app

    settings = load_settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'docs.db'}",
                             scheduler=False, slack_bot_token="xoxb-docs-check",
                             slack_signing_secret="docs-check", slack_app_token=None)
    return create_app(settings)


def endpoints(app) -> set[tuple[str, str]]:
    """(method, path) the app serves: the OpenAPI document plus routes outside it (Slack, docs)."""
    found = {(method.upper(), path) for path, operations in app.openapi()["paths"].items()
             for method in operations if method.upper() in METHODS}
    for route in app.router.routes:
        for method in getattr(route, "methods", None) or ():
            if method in METHODS:
                found.add((method, route.path))
    return found


def environment_names_used_by_tests_and_benches() -> set[str]:
    names: set[str] = set()
    for folder in ("tests", "bench", ".ci"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", "", ".sh", ".toml"):
                names |= set(ENV_NAME.findall(path.read_text(encoding="utf-8", errors="ignore")))
    return names


# ---- reading the docs ------------------------------------------------------------------------

ENV_NAME = re.compile(r"\b(?:LLM_INCIDENT|SLACK)_[A-Z0-9_]*[A-Z0-9]\b")
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


def command_sections(docs: Docs, tree) -> dict[tuple[str, ...], tuple[str, list[Row]]]:
    """Command path → (its heading, its table rows), from the command page's headings."""
    text = docs.get(COMMANDS_PAGE, "")
    rows = table_rows(COMMANDS_PAGE, text)
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


# ---- the checks ------------------------------------------------------------------------------

def undocumented(docs: Docs, routes: set[tuple[str, str]]) -> list[str]:
    """What the code defines and the docs lack, each with where to add it."""
    misses: list[str] = []
    tree = command_tree()
    documented = command_sections(docs, tree)
    for path, command in tree.items():
        name = command_name(path)
        if path not in documented:
            misses.append(f"{COMMANDS_PAGE}: no section for the command `{name}` "
                          f"(add a heading `### \\`{name}\\`` under 'The command line')")
            continue
        heading, rows = documented[path]
        for flag in option_flags(path, command):
            if not any(flag in flags_in(cell_words(r.first_cell)) for r in rows):
                misses.append(f"{COMMANDS_PAGE} § {heading}: no row for the option `{flag}` of "
                              f"`{name}` (add `| \\`{flag} …\\` | … |` to its options table)")
    config_rows = table_rows(CONFIG_PAGE, docs.get(CONFIG_PAGE, ""))
    for variable, field in environment_variables().items():
        if not any(variable in cell_words(r.first_cell) for r in config_rows):
            misses.append(f"{CONFIG_PAGE}: no row for `{variable}` (Settings.{field}) in the "
                          "variables table")
    endpoint_rows = section_rows(docs, API_PAGE, ENDPOINTS_HEADING)
    for method, path in sorted(routes, key=lambda e: (e[1], e[0])):
        if not any(m == method and path_matches(p, path, literal_params=False)
                   for r in endpoint_rows for m, p in METHOD_PATH.findall(r.first_cell)):
            misses.append(f"{API_PAGE} § {ENDPOINTS_HEADING}: no row for `{method} {path}`")
    console_rows = section_rows(docs, COMMANDS_PAGE, CONSOLE_HEADING)
    for verb, (usage, _) in console_verbs().items():
        if not any(cell_words(r.first_cell)[:1] == [verb] for r in console_rows):
            misses.append(f"{COMMANDS_PAGE} § {CONSOLE_HEADING}: no row for the console command "
                          f"`{verb}` (usage: `{usage}`)")
    verb_rows = section_rows(docs, COMMANDS_PAGE, VERBS_HEADING)
    for verb, (usage, _) in VERBS.items():
        if not any(cell_words(r.first_cell)[:1] == [verb] for r in verb_rows):
            misses.append(f"{COMMANDS_PAGE} § {VERBS_HEADING}: no row for the slash command "
                          f"`{verb}` (usage: `{usage}`)")
    return misses


def nonexistent(docs: Docs, routes: set[tuple[str, str]]) -> list[str]:
    """What the docs name and the code does not define, each with its file and line."""
    misses: list[str] = []
    tree = command_tree()
    every_flag = set().union(*(all_flags(c) for c in tree.values()))
    sectioned = {heading: path for path, (heading, _) in command_sections(docs, tree).items()}
    for page, text in docs.items():
        for piece in code_pieces(page, text):
            where = f"{page}:{piece.line}"
            for words in mention_tokens(piece.text):
                path, rest, unknown = resolve(words, tree)
                if unknown is not None:
                    misses.append(f"{where}: `{command_name(path)} {unknown}` is no command "
                                  f"(in `{piece.text}`)")
                    continue
                for flag in flags_in(rest):
                    if flag not in all_flags(tree[path]):
                        misses.append(f"{where}: `{command_name(path)}` has no option `{flag}` "
                                      f"(in `{piece.text}`)")
            leading = [f for f in flags_in(piece.text.split()[:1]) if f.startswith("--")]
            if leading and not COMMAND_MENTION.search(piece.text):
                owner = sectioned.get(piece.section) if page == COMMANDS_PAGE else None
                known = all_flags(tree[owner]) if owner is not None else every_flag | bench_flags()
                if leading[0] not in known:
                    whose = f"`{command_name(owner)}`" if owner is not None else "any command"
                    misses.append(f"{where}: `{leading[0]}` is no option of {whose}")
        for number, line in enumerate(text.splitlines(), 1):
            for variable in ENV_NAME.findall(line):
                if variable not in known_variables():
                    misses.append(f"{page}:{number}: `{variable}` is no setting (Settings) "
                                  "and no variable the tests or benches read")
            for path in V1_PATH.findall(line):
                if not any(path_matches(path, p, literal_params=True) for _, p in routes):
                    misses.append(f"{page}:{number}: `{path}` is no endpoint")
            for method, path in METHOD_PATH.findall(line):
                if path and not any(m == method and path_matches(path, p, literal_params=True)
                                    for m, p in routes):
                    misses.append(f"{page}:{number}: `{method} {path}` is no endpoint")
    for row in section_rows(docs, COMMANDS_PAGE, VERBS_HEADING):
        verb = (cell_words(row.first_cell) or ["?"])[0]
        if verb not in VERBS:
            misses.append(f"{row.page}:{row.line}: `{verb}` is no slash command (commands/verbs.py)")
    for row in section_rows(docs, COMMANDS_PAGE, CONSOLE_HEADING):
        for word in {w.strip(",") for span in SPAN.findall(row.first_cell) for w in span.split()[:1]}:
            if word not in (*console_verbs(), *LEAVE_WORDS):
                misses.append(f"{row.page}:{row.line}: the console has no command `{word}` "
                              "(console/local.py CONSOLE_VERBS)")
    return misses


_KNOWN: set[str] = set()


def known_variables() -> set[str]:
    if not _KNOWN:
        _KNOWN.update(environment_variables(), environment_names_used_by_tests_and_benches(),
                      THIRD_PARTY_VARIABLES)
    return _KNOWN


def report(misses: list[str], what: str) -> str:
    return f"{len(misses)} {what}:\n  " + "\n  ".join(misses)


def scopes(app) -> dict[tuple[str, str], str]:
    """(method, path) → the API-key scope the endpoint declares (`api.deps.required_scope`)."""
    from fastapi.routing import APIRoute

    from llm_incident.api.deps import required_scope

    declared = {}
    for route in app.routes:
        included = getattr(route, "original_router", None)  # FastAPI ≥ 0.165 wraps included routers
        prefix = getattr(getattr(route, "include_context", None), "prefix", "")
        for api_route in (included.routes if included is not None else [route]):
            if isinstance(api_route, APIRoute) and required_scope(api_route):
                for method in api_route.methods - {"HEAD"}:
                    declared[(method, prefix + api_route.path)] = required_scope(api_route)
    return declared


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return build_app(tmp_path_factory.mktemp("docs"))


@pytest.fixture(scope="module")
def routes(app) -> set[tuple[str, str]]:
    return endpoints(app)


def test_each_endpoint_row_names_the_scope_the_code_requires(app):
    rows = section_rows(read_docs(), API_PAGE, ENDPOINTS_HEADING)
    declared = scopes(app)
    assert len(declared) >= 10, "no scopes found: has FastAPI changed how it holds routers?"
    wrong = []
    for (method, path), scope in sorted(declared.items(), key=lambda e: (e[0][1], e[0][0])):
        for row in rows:
            named = METHOD_PATH.findall(row.first_cell)
            if any(m == method and path_matches(p, path, literal_params=False) for m, p in named):
                if len(row.cells) < 2 or f"`{scope}`" not in row.cells[1]:
                    wrong.append(f"{row.page}:{row.line}: `{method} {path}` needs the `{scope}` "
                                 f"scope; the row's scope cell says {row.cells[1:2]}")
    assert not wrong, report(wrong, "endpoint rows with the wrong scope")


def test_everything_the_code_defines_is_documented(routes):
    misses = undocumented(read_docs(), routes)
    assert not misses, report(misses, "undocumented (commands, options, variables, endpoints, verbs)")


def test_everything_the_docs_name_exists(routes):
    misses = nonexistent(read_docs(), routes)
    assert not misses, report(misses, "named in the docs but not defined by the code")


def _without_line(docs: Docs, page: str, needle: str) -> Docs:
    lines = docs[page].splitlines()
    kept = [line for line in lines if not line.lstrip().startswith(f"| `{needle}")]
    assert len(kept) == len(lines) - 1, f"expected one row starting `{needle}` in {page}"
    return {**docs, page: "\n".join(kept)}


@pytest.mark.parametrize(("page", "row", "expected"), [
    (COMMANDS_PAGE, "--dry-run", "option `--dry-run` of `llm-incident alerts check`"),
    (CONFIG_PAGE, "LLM_INCIDENT_FOLLOWUP_DAYS", "`LLM_INCIDENT_FOLLOWUP_DAYS`"),
    (API_PAGE, "GET /v1/audit", "`GET /v1/audit`"),
    (COMMANDS_PAGE, "mitigated", "slash command `mitigated`"),
])
def test_a_deleted_row_is_reported(routes, page, row, expected):
    misses = undocumented(_without_line(read_docs(), page, row), routes)
    assert any(expected in miss for miss in misses), misses


def test_a_name_the_code_lacks_is_reported(routes):
    docs = read_docs()
    docs["docs/extra.md"] = ("Run `llm-incident serve --colour` or `llm-incident frobnicate`; set\n"
                             "`LLM_INCIDENT_NO_SUCH_THING`; call `GET /v1/nothing` or `DELETE /healthz`, or\n"
                             "`curl http://localhost:8000/v1/routes/x/nope`.\n")
    misses = [m for m in nonexistent(docs, routes) if m.startswith("docs/extra.md")]
    assert len(misses) == 6, misses


def test_the_readme_fits_on_a_few_screens():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md is {len(lines)} lines; move reference text to docs/"


def test_the_readme_shows_the_test_command_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "-e '.[dev]'" in ci and re.search(r"^pytest\b", ci, re.M), ".ci/run changed its command"
    assert "pip install -e '.[dev]' && pytest" in readme


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces → hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_between_pages_resolve():
    docs = read_docs()
    anchors = {page: {anchor(h) for h, _, _ in sections(text) if h} for page, text in docs.items()}
    broken = []
    for page, text in docs.items():
        for number, line in enumerate(text.splitlines(), 1):
            for link in re.findall(r"\]\(([^)<>\s]+)\)", line):
                if re.match(r"[a-z]+:", link):
                    continue
                target, _, fragment = link.partition("#")
                resolved = (ROOT / page).parent / target if target else ROOT / page
                relative = str(resolved.resolve().relative_to(ROOT)) if resolved.exists() else None
                if relative is None:
                    broken.append(f"{page}:{number}: {link} (no such file)")
                elif fragment and relative in anchors and fragment not in anchors[relative]:
                    broken.append(f"{page}:{number}: {link} (no such heading in {relative})")
    assert not broken, report(broken, "broken links")
