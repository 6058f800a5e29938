"""`pip install ./client` into a fresh venv gives the SDK and nothing of the server."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parents[2] / "client"
SERVER_ONLY = ("fastapi", "slack_bolt", "slack_sdk", "sqlalchemy", "sqlmodel", "matplotlib",
               "numpy", "scipy", "uvicorn", "llm_incident", "alembic", "apscheduler")
CHECK = f"""
import sys
import llm_incident_client as c
from llm_incident_client import Controls, EventLogger, track
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({SERVER_ONLY!r}))
assert not loaded, loaded
print(c.__version__)
"""


@pytest.mark.timeout(300)
def test_the_client_installs_and_imports_alone(tmp_path):
    env_dir = tmp_path / "app-venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run([python, "-m", "pip", "install", "--quiet", str(CLIENT)],
                             capture_output=True, text=True, timeout=280)
    assert install.returncode == 0, install.stderr[-3000:]
    listed = subprocess.run([python, "-m", "pip", "list", "--format=freeze"], capture_output=True,
                            text=True, check=True).stdout.lower()
    names = {line.split("==")[0].replace("_", "-") for line in listed.splitlines()}
    assert "llm-incident-client" in names and "httpx" in names
    assert not names & {"fastapi", "slack-bolt", "sqlalchemy", "sqlmodel", "matplotlib", "llm-incident"}
    ran = subprocess.run([python, "-c", CHECK], capture_output=True, text=True, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "0.1.0"


def test_the_old_import_name_gives_the_same_objects():
    import llm_incident.client as old
    import llm_incident.client.openfeature as old_openfeature
    import llm_incident_client as new
    from llm_incident_client.openfeature import ControlsProvider

    assert old.Controls is new.Controls and old.EventLogger is new.EventLogger
    assert set(old.__all__) == set(new.__all__)
    assert old_openfeature.ControlsProvider is ControlsProvider
