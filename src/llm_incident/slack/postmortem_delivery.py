"""Deliver a `files` outbox row: render its files from the store and upload them — the postmortem
to the incident's thread, a route's chart to the channel (and thread) it was asked in.

At delivery time (not at close) the worker compiles the incident's postmortem and renders the
Markdown draft and a chart PNG per impacted route, or draws a `route_chart` (a route over a
dashboard range, `commands.route_chart`; a row without an incident, posted to its `channel` and
`payload.thread_ts`); each goes up in the three steps of
`files_upload_v2` (files.getUploadURLExternal → raw POST → files.completeUploadExternal), then
the draft is offered as a canvas (canvases.create). Slack refusing the canvas (free tier, missing
scope, …) is fine: it is logged at info and the file is already there.

Idempotent on retry: every finished step is stored in the row's payload (`uploaded`: name → file
id, `canvas`: id or why not) before the next, and a file's id is stored (`sharing`) before it is
completed: when that attempt may have reached Slack (a crash, a timeout), the retry looks for the
id among the thread's files and adopts it instead of uploading again (outbox_recovery). A retry
after a 429/5xx or a crash thus sends only what is missing. Errors propagate to the worker,
which retries or gives up as for any post. The canvas is not looked for: a crash inside
canvases.create may leave two.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from slack_sdk import WebClient
from sqlmodel import Session
from slack_sdk.errors import SlackApiError, SlackRequestError

from llm_incident.commands.route_chart import ROUTE_CHART, render_chart
from llm_incident.db import Database
from llm_incident.incidents.models import Incident
from llm_incident.incidents.postmortem import (
    Postmortem,
    compile_postmortem,
    render_markdown,
    route_charts,
)
from llm_incident.slack import outbox_recovery
from llm_incident.slack.models import OutboxMessage

log = logging.getLogger(__name__)

MARKDOWN, CHARTS, CANVAS = "postmortem_markdown", "postmortem_charts", "postmortem_canvas"
POSTMORTEM_KINDS = (MARKDOWN, CHARTS, CANVAS)
RETRYABLE_CANVAS_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                           "request_timeout"}


PROGRESS = ("uploaded", "sharing", "canvas")


def deliver_files(db: Database, client: WebClient, row: OutboxMessage,
                  incident: Incident | None, *, now: datetime) -> None:
    """Upload what the row's attachments ask for that is not uploaded yet, then the canvas;
    to the incident's thread, or without an incident to the row's channel and thread."""
    payload = dict(row.payload)
    if incident is not None:
        channel, thread_ts = incident.channel_id or "", incident.thread_ts
    else:
        channel, thread_ts = row.channel or "", payload.get("thread_ts")
    where = f"incident #{incident.number}'s thread" if incident is not None else channel
    uploaded: dict[str, str] = dict(payload.get("uploaded") or {})
    sharing: dict[str, str] = dict(payload.get("sharing") or {})
    since = outbox_recovery.probe_from(payload)
    in_thread: set[str] = set()  # file ids already there (read before rendering)
    if sharing and since is not None:  # completed before we heard back?
        in_thread = outbox_recovery.shared_files(client, channel=channel,
                                                 thread_ts=thread_ts or "", since=since)
    attachments = list(payload.get("attachments") or [])
    comment = (payload.get("message") or {}).get("text")
    with db.read() as session:
        pm = (compile_postmortem(session, incident.number, now=now) if incident is not None
              and any(a.get("kind") in POSTMORTEM_KINDS for a in attachments) else None)
        files = list(_files(session, attachments, pm))
    markdown = render_markdown(pm) if pm is not None else ""
    for name, title, content in files:
        if name in uploaded:
            continue
        if name in sharing and sharing[name] in in_thread:
            log.info("%s is already in %s; not uploading it again", name, where)
            uploaded[name] = sharing.pop(name)
            payload.update(uploaded=uploaded, sharing=sharing)
            _save(db, row.id, payload)
            continue
        sharing[name] = _upload(client, name, content)
        payload["sharing"] = sharing
        _save(db, row.id, payload)
        client.files_completeUploadExternal(
            files=[{"id": sharing[name], "title": title}], channel_id=channel,
            thread_ts=thread_ts, initial_comment=comment if not uploaded else None)
        uploaded[name] = sharing.pop(name)
        payload.update(uploaded=uploaded, sharing=sharing)
        _save(db, row.id, payload)
    canvas = next((a for a in attachments if a.get("kind") == CANVAS), None)
    if canvas is not None and incident is not None and "canvas" not in payload:
        payload["canvas"] = _canvas(client, incident, canvas["title"], markdown)
        _save(db, row.id, payload)


def _files(session: Session, attachments: list[dict[str, Any]],
           pm: Postmortem | None) -> Iterator[tuple[str, str, bytes]]:
    """(filename, title, bytes) per file, in attachment order; postmortem charts expand per
    route (`pm`: the incident's postmortem, for its kinds)."""
    for a in attachments:
        kind = a.get("kind")
        if kind == ROUTE_CHART:
            yield a["filename"], a["title"], render_chart(session, a.get("args") or {})
        elif kind in (MARKDOWN, CHARTS) and pm is None:
            raise ValueError(f"a {kind} attachment needs an incident")
        elif kind == MARKDOWN and pm is not None:
            yield a["filename"], a["title"], render_markdown(pm).encode("utf-8")
        elif kind == CHARTS and pm is not None:
            for route, png in route_charts(session, pm).items():
                yield (a["filename"].replace("{route}", route),
                       a["title"].replace("{route}", route), png)


def _upload(client: WebClient, name: str, content: bytes) -> str:
    """Steps 1 and 2 of an upload (an upload URL, then the bytes); the new file's id.

    The raw POST is slack_sdk's own (`files_upload_v2` calls it the same way: proxy, TLS and
    timeout of the client)."""
    url = client.files_getUploadURLExternal(filename=name, length=len(content))
    result = client._upload_file(url=str(url.get("upload_url")), data=content,  # noqa: SLF001
                                 logger=client._logger, timeout=client.timeout,  # noqa: SLF001
                                 proxy=client.proxy, ssl=client.ssl)
    if result.status != 200:
        raise SlackRequestError(f"Failed to upload {name} (status: {result.status}, "
                                f"body: {str(result.body)[:200]})")
    return str(url.get("file_id"))


def _canvas(client: WebClient, incident: Incident, title: str, markdown: str) -> str:
    """The canvas id, or `refused: <error>` when the workspace does not allow it (logged at
    info). Rate limits and Slack outages raise, so the worker retries the canvas alone."""
    try:
        resp = client.canvases_create(
            title=title, channel_id=incident.channel_id,
            document_content={"type": "markdown", "markdown": markdown})
    except SlackApiError as exc:
        status = getattr(exc.response, "status_code", 0)
        data = exc.response.data if isinstance(exc.response.data, dict) else {}
        error = str(data.get("error") or status)
        if status == 429 or status >= 500 or error in RETRYABLE_CANVAS_ERRORS:
            raise
        log.info("no canvas for incident #%s (Slack answered %s); the Markdown file is in the "
                 "thread", incident.number, error)
        return f"refused: {error}"
    return str(resp.get("canvas_id") or "created")


def _save(db: Database, row_id: int | None, payload: dict[str, Any]) -> None:
    """Store delivery progress in the row (a new dict: the column is plain JSON)."""
    with db.write() as session:
        current = session.get(OutboxMessage, row_id)
        if current is not None:
            current.payload = {**current.payload, **{k: payload[k] for k in PROGRESS
                                                     if k in payload}}
            session.add(current)
