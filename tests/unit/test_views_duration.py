"""Cards, nudges and alerts write durations as the postmortem does: one format."""

from datetime import timedelta

import pytest

from llm_incident.commands.views import duration
from llm_incident.incidents.postmortem_phrases import span


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (49, "49s"), (60, "1m"), (725, "12m 5s"),
                                           (3600, "1h 0m"), (3900, "1h 5m"),
                                           (2 * 86400 + 3 * 3600, "2d 3h 0m")])
def test_one_duration_format(seconds, text):
    assert duration(timedelta(seconds=seconds)) == span(timedelta(seconds=seconds)) == text
