"""Alert rule files (TOML, YAML, JSON): defaults, overrides, and one clear line per mistake."""

from __future__ import annotations

import pytest

from llm_incident.alerts.evaluate import CRITICAL, OK, WARNING, judge, ratio
from llm_incident.alerts.rules import DEFAULT_RULES, AlertRule, RuleError, load_rules, parse_rules
from llm_incident.commands.alert_views import sparkline

TOML = """
defaults = true

[[rules]]
id = "flagged-rate"          # replaces the built-in rule of that id
route = "support.reply"
metric = "flagged_rate"
window = "10m"
warning = 3
critical = 6
min_calls = 30
cooldown = "1h"

[[rules]]
id = "slow-prod"
metric = "p95_duration_ms"
compare = "absolute"
warning = 4000
critical = 8000
filter = 'env = "prod" AND model != "in-house-7b"'
"""

YAML = """
defaults: false
rules:
  - id: rate-limited-eu
    metric: error_code_rate
    error_code: 429
    compare: absolute
    warning: 0.01
    critical: 0.05
    filter: region = "eu-west-1"
"""


def test_toml_file_overrides_a_default_and_adds_rules(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(TOML)
    rules = load_rules(path)
    ids = [r.id for r in rules]
    assert ids == [r.id for r in DEFAULT_RULES if r.id != "flagged-rate"] + ["flagged-rate",
                                                                            "slow-prod"]
    flagged = rules[-2]
    assert (flagged.route, flagged.window, flagged.warning, flagged.min_calls) == (
        "support.reply", "10m", 3, 30)
    assert flagged.cooldown_span.total_seconds() == 3600


def test_yaml_file_without_defaults(tmp_path):
    path = tmp_path / "rules.yml"
    path.write_text(YAML)
    (rule,) = load_rules(path)
    assert (rule.metric, rule.error_code, rule.label()) == (
        "error_code_rate", "429", "error rate of code 429")


def test_json_file_and_no_file(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text('{"rules": []}')
    assert load_rules(path) == DEFAULT_RULES
    assert load_rules(None) == DEFAULT_RULES
    assert len(DEFAULT_RULES) == 7


@pytest.mark.parametrize(("data", "message"), [
    ({"rules": [{"id": "x", "metric": "p99", "warning": 1, "critical": 2}]}, "rule x: metric"),
    ({"rules": [{"id": "x", "metric": "flagged_rate", "warning": 3, "critical": 2}]},
     "critical (2) is below warning (3)"),
    ({"rules": [{"id": "x", "metric": "error_code_rate", "warning": 1, "critical": 2}]},
     "needs error_code"),
    ({"rules": [{"id": "x", "metric": "flagged_rate", "warning": 1, "critical": 2,
                 "window": "fortnight"}]}, "rule x: window: window 'fortnight'"),
    ({"rules": [{"id": "x", "metric": "flagged_rate", "warning": 1, "critical": 2,
                 "filter": "tokens_out >"}]}, "bad filter at column 13: expected a value after"),
    ({"rules": [{"id": "x", "metric": "flagged_rate", "warning": 1, "critical": 2,
                 "baseline": "yesterday"}]}, "must be one of week, day, trailing, previous"),
    ({"rules": [{"id": "x", "metric": "flagged_rate", "warning": 1, "critical": 2,
                 "colour": "red"}]}, "colour: Extra inputs are not permitted"),
    ({"rules": [{"id": "x", "metric": "flagged_rate", "warning": 1, "critical": 2}] * 2},
     "rule id(s) used twice: x"),
    ({"rule": []}, "unknown key(s) rule"),
    ({"defaults": "yes"}, "`defaults` must be true or false"),
    ([1, 2], "expected a table/mapping"),
])
def test_mistakes_are_named(data, message):
    with pytest.raises(RuleError) as info:
        parse_rules(data, source="rules.toml")
    assert message in str(info.value) and str(info.value).startswith("rules.toml")


def test_unreadable_or_malformed_files(tmp_path):
    with pytest.raises(RuleError, match="cannot read alert rules"):
        load_rules(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[rules]\nid=")
    with pytest.raises(RuleError, match="are not valid toml"):
        load_rules(bad)
    other = tmp_path / "rules.ini"
    other.write_text("x")
    with pytest.raises(RuleError, match="use a .toml, .yaml/.yml or .json file"):
        load_rules(other)


def test_levels_for_ratio_and_absolute_rules():
    rel = AlertRule(id="r", metric="flagged_rate", warning=2, critical=4, floor=0.02)
    assert judge(rel, 0.05, 0.02) == WARNING        # 2.5×
    assert judge(rel, 0.08, 0.02) == CRITICAL       # 4× exactly
    assert judge(rel, 0.019, 0.001) == OK           # 19× but under the floor
    assert judge(rel, 0.05, 0.0) == CRITICAL        # from nothing
    assert judge(rel, 0.0, 0.0) == OK
    absolute = AlertRule(id="a", metric="error_rate", compare="absolute", warning=0.05,
                         critical=0.2)
    assert [judge(absolute, v, None) for v in (0.049, 0.05, 0.2)] == [OK, WARNING, CRITICAL]
    assert ratio(None, 1) is None and ratio(1, 0) == float("inf") and ratio(2, 4) == 0.5


def test_sparkline():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([None, 5, 5]) == "·▁▁"
    assert sparkline([None, None]) == ""
