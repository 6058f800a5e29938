"""Settings: names from PRODUCT.md, comma lists, .env, one clear error per bad variable."""

from __future__ import annotations

import pytest

from llm_incident.settings import SettingsError, load_settings


def test_defaults_without_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.database_url == "sqlite:///./llm_incident.db"
    assert s.slack_api_url == "https://slack.com/api/"
    assert s.responders == [] and s.api_keys == []
    assert s.slack_enabled is False and s.excerpt_max_chars == 2000


def test_environment_names_and_comma_lists(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLM_INCIDENT_RESPONDERS", "U123, S456 ,,U789")
    monkeypatch.setenv("LLM_INCIDENT_API_KEYS", "k1,k2")
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9999/api")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "shh")
    monkeypatch.setenv("LLM_INCIDENT_ALERT_CHANNEL", "C42")
    s = load_settings()
    assert s.responders == ["U123", "S456", "U789"] and s.api_keys == ["k1", "k2"]
    assert s.slack_api_url == "http://127.0.0.1:9999/api/"
    assert s.slack_enabled is True and s.alert_channel == "C42"


def test_dotenv_file_is_honoured(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("LLM_INCIDENT_DATABASE_URL=sqlite:///from-dotenv.db\n")
    assert load_settings().database_url == "sqlite:///from-dotenv.db"


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("LLM_INCIDENT_EXCERPT_MAX_CHARS", "lots", "LLM_INCIDENT_EXCERPT_MAX_CHARS: Input should be a valid integer"),
        ("SLACK_APP_TOKEN", "xoxb-wrong", "SLACK_APP_TOKEN: Value error, must start with 'xapp-'"),
        ("SLACK_API_URL", "slack.example", "SLACK_API_URL: Value error, must be an http(s) URL"),
    ],
)
def test_invalid_values_name_the_variable(monkeypatch, tmp_path, var, value, expected):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert expected in str(err.value)
