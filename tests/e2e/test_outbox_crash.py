"""`kill -9` of the real server while Slack holds the postmortem summary post or a file upload
(Slack did it; the answer never came back), then a new process on the same database: the summary
is posted once, every file uploaded once, and the remaining posts resume in seconds, not the
minute the old lease took (the 5 s target is measured by bench/faults_outbox.py)."""

from __future__ import annotations

import pytest

from tests.fakeslack import FakeSlack
from tests.outbox_crash import SUMMARY, crash_run


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


FILES = {"postmortem-incident-1.md": 1, "incident-1-support.reply.png": 1}
STALL_BOUND = 20.0  # seconds: far below the old stall, loose enough for a loaded CI machine


def test_a_crash_during_the_summary_post_posts_it_once(db, slack, tmp_path):
    run = crash_run(tmp_path, db, slack, held="summary")
    assert run.summary_posts == 1, f"{SUMMARY!r} posted {run.summary_posts} times"
    assert run.looked_up[:1] == ["conversations.replies"]  # found in the thread, adopted
    assert dict(run.uploads) == FILES and run.canvases == 1
    # the old 60 s lease stalled delivery a minute; the 5 s target is bench/faults_outbox.py's
    assert run.from_ready <= STALL_BOUND and run.to_next_post <= STALL_BOUND, run


def test_a_crash_during_an_upload_uploads_each_file_once(db, slack, tmp_path):
    run = crash_run(tmp_path, db, slack, held="upload", after_beat=True)
    assert dict(run.uploads) == FILES, run.uploads
    assert run.summary_posts == 1 and run.canvases == 1
    assert "conversations.replies" in run.looked_up
    # the old 60 s lease stalled delivery a minute; the 5 s target is bench/faults_outbox.py's
    assert run.from_ready <= STALL_BOUND and run.to_next_post <= STALL_BOUND, run
