"""Imports every table module so `SQLModel.metadata` is complete (migrations, tests)."""

from sqlmodel import SQLModel

from llm_incident import apikeys, changes  # noqa: F401
from llm_incident.alerts import models as alert_models  # noqa: F401
from llm_incident.controls import models as control_models  # noqa: F401
from llm_incident.controls import instances, proof  # noqa: F401
from llm_incident.events import models as event_models  # noqa: F401
from llm_incident.events import routes  # noqa: F401
from llm_incident.evidence import models as evidence_models  # noqa: F401
from llm_incident.incidents import models as incident_models  # noqa: F401
from llm_incident.incidents import postmortem_snapshot  # noqa: F401
from llm_incident.rollups import models as rollup_models  # noqa: F401
from llm_incident.scheduler import models as scheduler_models  # noqa: F401
from llm_incident.slack import models as slack_models  # noqa: F401

metadata = SQLModel.metadata
