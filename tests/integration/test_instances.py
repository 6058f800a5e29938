"""Proof of application: real `Controls` clients report themselves with their long-poll; the server lists
them (`GET /v1/instances`), tallies who applied a change and whether traffic stopped."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sqlmodel import select

from llm_incident.controls import instances, proof
from llm_incident.controls.instances import ClientInstance, parse_report, record_report
from llm_incident.controls.service import change_controls
from llm_incident.events.ingest import ingest_events
from llm_incident_client import Controls, __version__
from llm_incident_client.instance import HEADER, Identity, report_header
from tests.support import TEST_KEY

ROUTE = "support.reply"


def eventually(check: Callable[[], object], within: float = 10.0):
    deadline = time.monotonic() + within
    while not (value := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within} s")
        time.sleep(0.01)
    return value


def listed(api: httpx.Client, **params) -> dict:
    response = api.get("/v1/instances", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_each_client_is_listed_with_its_routes_and_the_version_it_applied(server, api):
    with Controls(server, TEST_KEY, wait=2, routes=[ROUTE], instance_name="web-1") as one, \
            Controls(server, TEST_KEY, wait=2, instance_name="web-2") as two:
        assert one.wait_ready(5) and two.wait_ready(5)
        two.guard("search.answer")  # an app that watches every route reports the routes it guards
        response = api.put(f"/v1/routes/{ROUTE}/controls", json={"enabled": False})
        assert response.status_code == 200
        version = response.json()["controls"]["version"]

        def both_applied():
            answer = listed(api)
            applied = {(i["name"], a["route"]): a for i in answer["instances"] for a in i["applied"]}
            return answer if applied.get(("web-1", ROUTE), {}).get("up_to_date") and \
                ("web-2", "search.answer") in applied else None

        answer = eventually(both_applied)
    by_name = {i["name"]: i for i in answer["instances"]}
    assert set(by_name) == {"web-1", "web-2"}
    web1 = by_name["web-1"]
    assert web1["id"] == one.instance_id and web1["version"] == __version__ and web1["env"] == "prod"
    assert web1["routes"] == [ROUTE] and web1["stale"] is False and web1["wait_seconds"] == 2
    [applied] = web1["applied"]
    assert applied["version"] == applied["current_version"] == version
    assert by_name["web-2"]["routes"] == ["search.answer"]
    assert {"route": ROUTE, "env": "prod", "current_version": version, "instances": 1, "up_to_date": 1,
            "stale": 0} in answer["routes"]
    only = listed(api, route=ROUTE)
    assert [i["name"] for i in only["instances"]] == ["web-1"] and only["count"] == 1


def test_instances_need_a_read_key(server):
    assert httpx.get(f"{server}/v1/instances").status_code == 401


def test_an_unusable_report_is_ignored_and_the_controls_still_answer(server, api):
    for value in ("", "garbage", "name=no-id", "id=" + "x" * 20_000, "id=a&applied=%00@x@y&pid=-1&wait=nan"):
        response = api.get("/v1/controls", params={"env": "prod"}, headers={HEADER: value})
        assert response.status_code == 200, (value, response.text)
    names = [i["id"] for i in listed(api)["instances"]]
    assert names == ["a"]  # only the last one had an id; its bad parts were dropped


def test_a_report_is_parsed_with_ages_turned_into_server_times():
    now = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)
    identity = Identity(id="i1", name="web-7", host="host-7", pid=42)
    header = report_header(identity, wait=25, routes=["a.b", "c@d"], applied={"a.b": (3, 0.5), "c@d": (1, 10)})
    report = parse_report(header, "prod", now)
    assert (report.id, report.name, report.host, report.pid, report.env) == ("i1", "web-7", "host-7", 42, "prod")
    assert report.routes == ("a.b", "c@d")
    assert report.applied == {"a.b": (3, now - timedelta(seconds=0.5)), "c@d": (1, now - timedelta(seconds=10))}


def _instance(session, name: str, *, seen: datetime, version: int | None, at: datetime | None = None,
              first: datetime | None = None) -> None:
    applied = f"&applied={ROUTE}@{version}@0" if version is not None else ""
    report = parse_report(f"id={name}&name={name}&host={name}&wait=25&route={ROUTE}{applied}", "prod",
                          at or seen)
    row = record_report(session, report, seen)
    row.first_seen = first or seen - timedelta(minutes=5)
    session.add(row)


def test_the_tally_names_stale_instances_and_the_time_to_apply(db):
    changed = datetime(2026, 12, 1, 14, 2, 30, tzinfo=timezone.utc)
    with db.write() as session:
        _instance(session, "web-1", seen=changed + timedelta(seconds=0.2), version=2)
        _instance(session, "web-2", seen=changed + timedelta(seconds=0.4), version=2)
        _instance(session, "web-7", seen=changed - timedelta(seconds=20), version=1)
        _instance(session, "gone", seen=changed - timedelta(hours=2), version=1)  # long gone: not expected
    now = changed + timedelta(minutes=1)
    with db.read() as session:
        t = proof.tally(session, ROUTE, "prod", 2, changed, now)
        live = proof.tally(session, ROUTE, "prod", 2, changed, changed + timedelta(seconds=1))
    assert (t.total, t.applied) == (3, 2) and t.stale == (("web-7", changed - timedelta(seconds=20)),)
    assert proof.ack_line("kill", ROUTE, t) == "⚠️ 2 of 3 applied; web-7 last seen 14:02 (stale)"
    assert proof.ack_line("kill", ROUTE, live) == "⏳ 2 of 3 applied so far; waiting for web-7"
    with db.write() as session:
        _instance(session, "web-7", seen=now, version=2, at=changed + timedelta(seconds=0.4))
    with db.read() as session:
        done = proof.tally(session, ROUTE, "prod", 2, changed, now)
    assert proof.ack_line("kill", ROUTE, done) == "✅ kill applied by 3/3 instances in 0.4 s"


def test_traffic_stopped_is_read_from_the_events(db):
    changed = datetime(2026, 12, 1, 14, 21, 5, tzinfo=timezone.utc)

    def event(i: int, ts: datetime, **extra) -> dict:
        return {"event_id": f"e{i}", "route": ROUTE, "ts": ts.isoformat(), **extra}

    with db.write() as session:
        ingest_events(session, [event(1, changed - timedelta(seconds=30)),
                                event(2, changed + timedelta(seconds=2)),  # in flight while it was applied
                                event(3, changed + timedelta(seconds=9), status="error", error_code="killed")],
                      now=changed + timedelta(seconds=10))
    applied = changed + timedelta(seconds=3)
    with db.read() as session:
        line = proof.traffic_line(session, ROUTE, "prod", changed, applied)
    assert line == f"traffic on `{ROUTE}` stopped 14:21:07 UTC (0 upstream calls since)"
    with db.write() as session:
        ingest_events(session, [event(4, changed + timedelta(seconds=20))], now=changed + timedelta(seconds=21))
    with db.read() as session:
        line = proof.traffic_line(session, ROUTE, "prod", changed, applied)
    assert line == (f"⚠️ traffic on `{ROUTE}` has not stopped: 1 upstream call since the kill was applied, "
                    "the last at 14:21:25 UTC")


def test_a_change_made_elsewhere_is_acknowledged_by_every_connected_client(server, db):
    clients = [Controls(server, TEST_KEY, wait=2, routes=[ROUTE], instance_name=f"web-{i}") for i in range(3)]
    try:
        assert all(c.wait_ready(5) for c in clients)
        with db.write() as session:
            result = change_controls(session, ROUTE, "prod", {"enabled": False}, actor="U1", reason="test",
                                     now=datetime.now(timezone.utc))
        changed_at, version = result.controls.updated_at, result.controls.version

        def tallied():
            with db.read() as session:
                t = proof.tally(session, ROUTE, "prod", version, changed_at, datetime.now(timezone.utc))
            return t if t.complete else None

        t = eventually(tallied)
    finally:
        for c in clients:
            c.close()
    assert (t.total, t.applied, t.stale) == (3, 3, ())
    assert proof.ack_line("kill", ROUTE, t).startswith("✅ kill applied by 3/3 instances in ")
    with db.read() as session:
        rows = list(session.exec(select(ClientInstance)))
    assert sorted(r.name for r in rows) == ["web-0", "web-1", "web-2"]
    assert all(instances.applied_version(r, ROUTE)[0] == version for r in rows)


def test_a_kill_superseded_by_a_restore_counts_traffic_only_until_the_restore_and_ends(db):
    from llm_incident.scheduler.context import JobContext
    from llm_incident.scheduler.control_proof import update_control_proofs

    start = datetime(2026, 12, 1, 14, 21, tzinfo=timezone.utc)
    with db.write() as session:
        _instance(session, "web-1", seen=start - timedelta(seconds=5), version=0)
        kill = change_controls(session, ROUTE, "prod", {"enabled": False}, actor="U1", reason="t", now=start)
        proof.follow(session, incident=1, change_id=kill.change_id, route=ROUTE, env="prod",
                     version=kill.controls.version, after=kill.after, line="<@U1> killed", changed_at=start)
    jc = JobContext(db=db)
    assert update_control_proofs(jc, start + timedelta(seconds=1)) == [kill.change_id]
    with db.read() as session:
        row = session.get(proof.ControlProof, kill.change_id)
    assert row.shown.startswith("⏳ 0 of 1 applied so far; waiting for web-1") and not row.done
    assert update_control_proofs(jc, start + timedelta(seconds=2)) == []  # nothing new: nothing posted
    with db.write() as session:
        _instance(session, "web-1", seen=start + timedelta(seconds=3), version=kill.controls.version,
                  at=start + timedelta(seconds=0.3))
        restore = change_controls(session, ROUTE, "prod", {"enabled": True}, actor="U1", reason="t",
                                  now=start + timedelta(seconds=60))
        ingest_events(session, [{"event_id": "after-restore", "route": ROUTE,
                                 "ts": (start + timedelta(seconds=70)).isoformat()}],
                      now=start + timedelta(seconds=71))
    assert restore.controls.version == kill.controls.version + 1
    assert update_control_proofs(jc, start + timedelta(seconds=80)) == [kill.change_id]
    with db.read() as session:
        row = session.get(proof.ControlProof, kill.change_id)
    assert row.shown == ("✅ kill applied by 1/1 instances in 0.3 s\n"
                         f"no upstream calls on `{ROUTE}` since the kill")
    assert row.done and row.acked_at is not None


def followed_kill(db) -> datetime:
    """A kill made in incident #1, followed and tallied once (no instance has reported); when."""
    from llm_incident.scheduler.context import JobContext
    from llm_incident.scheduler.control_proof import update_control_proofs

    start = datetime(2026, 12, 1, 14, 21, tzinfo=timezone.utc)
    with db.write() as session:
        kill = change_controls(session, ROUTE, "prod", {"enabled": False}, actor="U1", reason="t", now=start)
        proof.follow(session, incident=1, change_id=kill.change_id, route=ROUTE, env="prod",
                     version=kill.controls.version, after=kill.after, line="<@U1> killed", changed_at=start)
    update_control_proofs(JobContext(db=db), start + timedelta(seconds=1))
    return start


def test_the_panel_of_a_followed_change_shows_its_proof(db):
    from llm_incident.commands import mitigations
    from llm_incident.commands.replies import Note
    from llm_incident.controls.service import get_controls

    followed_kill(db)
    with db.read() as session:
        notes = [b.text for b in mitigations.panel_with_proof(session, get_controls(session, ROUTE)).blocks
                 if isinstance(b, Note)]
    assert notes[-1].startswith(f"⏳ no instance guarding `{ROUTE}` has reported yet")


def test_the_controls_command_shows_the_proof_too(db):
    from llm_incident.commands.context import Context
    from llm_incident.commands.core import CommandCore
    from llm_incident.console.shell import ConsoleDelivery

    start = followed_kill(db)
    shown = CommandCore(db, ConsoleDelivery()).run(
        f"controls {ROUTE}", Context(user="U1", channel="C1", now=start + timedelta(seconds=2)))
    assert any(f"no instance guarding `{ROUTE}` has reported yet" in getattr(b, "text", "")
               for b in shown.reply.blocks)


def test_the_postmortem_actions_carry_the_proof(db):
    from llm_incident.commands.context import Context
    from llm_incident.commands.core import CommandCore
    from llm_incident.console.shell import ConsoleDelivery
    from llm_incident.incidents.postmortem import compile_postmortem, render_markdown
    from llm_incident.scheduler.context import JobContext
    from llm_incident.scheduler.control_proof import update_control_proofs

    start = datetime(2026, 12, 1, 14, 21, tzinfo=timezone.utc)
    core = CommandCore(db, ConsoleDelivery())
    at = lambda s: Context(user="U1", channel="C1", now=start + timedelta(seconds=s))  # noqa: E731
    core.run(f"start {ROUTE} quality bad answers", at(0))
    assert core.run(f"kill {ROUTE}", at(1)).reply.text.startswith("Done")
    update_control_proofs(JobContext(db=db), start + timedelta(seconds=3))
    with db.read() as session:
        markdown = render_markdown(compile_postmortem(session, 1, now=start + timedelta(minutes=1)))
    action = next(line for line in markdown.splitlines() if " — " in line and "kill" in line)
    assert f"(⏳ no instance guarding `{ROUTE}` has reported yet" in action, action
