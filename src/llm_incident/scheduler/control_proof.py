"""Proof of application in the thread: every second, each followed control change (made in an
incident, for `FOLLOW_FOR`) gets its thread line edited in place with how many instances applied it
("kill applied by 3/3 instances in 0.4 s") and, for a kill, whether upstream traffic stopped; the
route's panel shows the same. Only what changed is posted; all state is in `control_proofs`.
"""

from __future__ import annotations

from datetime import datetime

from llm_incident.commands import mitigations
from llm_incident.commands.context import panel_key
from llm_incident.commands.replies import Post, Reply, Section, Target
from llm_incident.controls import proof as proofs
from llm_incident.controls.service import get_controls
from llm_incident.scheduler.context import JobContext

SECONDS = 1


def control_line_key(incident: int, change_id: int) -> str:
    """The outbox key of a control change's thread line (as the command core posts it)."""
    return f"incident:{incident}:control:{change_id}"


def update_control_proofs(jc: JobContext, now: datetime) -> list[int]:
    """Refresh every followed change; the ids whose thread line was edited. Each is computed in a read;
    only what changed is written (with its posts, in one transaction)."""
    with jc.db.read() as session:
        ids = proofs.open_proofs(session)
    edited = []
    for change_id in ids:
        with jc.db.read() as session:
            proof = session.get(proofs.ControlProof, change_id)
            if proof is None or proof.done:
                continue
            now_is = proofs.refresh(session, proof, now)
            if now_is.text == proof.shown and now_is.ack == proof.ack and not now_is.done:
                continue
        text = now_is.text
        with jc.db.write() as session:
            stored = session.get(proofs.ControlProof, change_id)
            stored.ack, stored.acked_at, stored.done = now_is.ack, now_is.acked_at, now_is.done
            if text != stored.shown:
                stored.shown = text
                edited.append(change_id)
                if jc.delivery is not None:
                    jc.delivery.enqueue(session, _posts(session, stored, text))
            session.add(stored)
    return edited


def _posts(session, proof: proofs.ControlProof, text: str) -> list[Post]:
    n, full = proof.incident_number, f"{proof.line}\n{text}"
    posts = [Post(n, Target.thread, Reply(text=full, blocks=(Section(text=full),), ephemeral=False),
                  key=control_line_key(n, proof.change_id), replace=True)]
    state = get_controls(session, proof.route, proof.env)
    if state.version == proof.version:  # a later change owns the panel now
        posts.append(Post(n, Target.thread, mitigations.panel(state, text), key=panel_key(n, proof.route),
                          replace=True))
    return posts
