"""The reference in docs/ against the code, both ways.

From the code: every `llm-incident` command and option (click), environment variable (Settings),
HTTP endpoint (the app's routes and OpenAPI document) and slash-command verb (`VERBS`) has its
entry — a section or a table row in the page that holds that kind of thing. From the docs
(README.md and docs/*.md): every command, option, variable and endpoint they name exists.
Each test reports every miss at once, with the file (and line or section) to fix.
"""

from __future__ import annotations

import functools
import re

import pytest

from llm_incident.commands.verbs import VERBS
from tests.docs_inventory import (ENV_NAME, ROOT, all_flags, bench_flags, build_app, command_tree,
                                  console_verbs, endpoints, environment_names_used_by_tests_and_benches,
                                  environment_variables, option_flags, scopes)
from tests.docs_pages import (COMMAND_MENTION, METHOD_PATH, SPAN, V1_PATH, Docs, cell_words,
                              code_pieces, command_name, command_sections, flags_in, mention_tokens,
                              path_matches, read_docs, resolve, section_rows, sections, table_rows)

COMMANDS_PAGE = "docs/commands.md"
CONFIG_PAGE = "docs/configuration.md"
API_PAGE = "docs/http-api.md"
ENDPOINTS_HEADING = "Endpoints"
VERBS_HEADING = "Slash commands and the console"
CONSOLE_HEADING = "Console only"
LEAVE_WORDS = ("quit", "exit")  # the console loop's own words (console/shell.py)
# variables of libraries we use, named in the docs on purpose (a warning not to set them)
THIRD_PARTY_VARIABLES = {"SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"}


# ---- the checks ------------------------------------------------------------------------------

def undocumented(docs: Docs, routes: set[tuple[str, str]]) -> list[str]:
    """What the code defines and the docs lack, each with where to add it."""
    misses: list[str] = []
    tree = command_tree()
    documented = command_sections(docs, COMMANDS_PAGE, tree)
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
    sectioned = {heading: path for path, (heading, _) in command_sections(docs, COMMANDS_PAGE, tree).items()}
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


@functools.cache
def known_variables() -> frozenset[str]:
    return frozenset({*environment_variables(), *environment_names_used_by_tests_and_benches(),
                      *THIRD_PARTY_VARIABLES})


def report(misses: list[str], what: str) -> str:
    return f"{len(misses)} {what}:\n  " + "\n  ".join(misses)



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
