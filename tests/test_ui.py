"""The web view, server side: every route through Flask's test client, bad parameters answered with
a clear 4xx page, and nothing ever written; the SVG timeline; the ``ui`` and ``timeline`` commands."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

import ctrledger
from ctrledger import FieldChange, HistoryEntry
from ctrledger.cli import main as cli
from ctrledger.ui.app import create_app, has_status, side_by_side, status_text
from ctrledger.ui.timeline import render_svg

from .conftest import StepClock, make
from .ui_sample import Sample, build, digest

NOW = datetime(2026, 11, 21, 4, 0, tzinfo=UTC)  # after the sample's last event (03:00:16)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    return build(tmp_path_factory.mktemp("ui") / "ledger.db")


@pytest.fixture
def sample(built: Sample, tmp_path: Path) -> Sample:
    """A copy of the sample ledger of this test's own."""
    path = tmp_path / "ledger.db"
    shutil.copyfile(built.path, path)
    return dataclasses.replace(built, path=path)


@pytest.fixture
def client(sample: Sample) -> Iterator[Any]:
    """A test client of the view; afterwards, the store's file and log position are as they were."""
    before = digest(sample.path)
    with ctrledger.open(sample.path, mode="r") as store:  # as ctrledger ui opens it
        app = create_app(store, source="ledger.db", now=lambda: NOW)
        yield app.test_client()
        assert store.position == sample.head, "the view moved the log"
    assert digest(sample.path) == before, "the view wrote to the store's file"


def page(client: Any, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code, response.text[:500])
    return unescape(response.text)


def message(text: str) -> str:
    found = re.search(r'class="message">(.*?)</p>', text, re.S)
    assert found, text[:300]
    return found.group(1).strip()


def ids(text: str) -> list[str]:
    return re.findall(r'class="cid" href="[^"]*">([^<]+)</a>', text)


# -- the containers list --------------------------------------------------------------------


def test_list_now(client: Any) -> None:
    text = page(client, "/")
    assert ids(text) == sorted(f"web-{i}" for i in range(12))
    assert "docker.io/library/nginx:1.28" in text  # web-1, upgraded and re-created
    assert 'max="17" value="17"' in text  # the slider spans the log, at its head


def test_list_filtered(client: Any) -> None:
    assert ids(page(client, "/?filter=labels.env==prod")) == sorted(f"web-{i}" for i in range(1, 12, 2))
    # several filters: any of them (OR), as ls takes them
    assert ids(page(client, "/?filter=id==web-2&filter=id==web-3")) == ["web-2", "web-3"]


@pytest.mark.parametrize("query", ["at=@12", "pos=12"], ids=["typed", "slider"])
def test_list_at_a_position(client: Any, sample: Sample, query: str) -> None:
    text = page(client, f"/?{query}")
    assert "at @12" in text
    assert 'max="17" value="12"' in text
    assert "tier=web" in re.search(r">web-1</a>.*?</tr>", text, re.S).group(0)  # type: ignore[union-attr]
    assert 'href="/containers/web-1?ns=default&amp;at=%4012"' in client.get(f"/?{query}").text


def test_list_at_a_time_ago_and_an_iso_time(client: Any) -> None:
    assert ids(page(client, "/?at=2h")) == []  # 02:00, before anything was created
    assert ids(page(client, "/?at=2026-11-21T03:00:02Z")) == ["web-0", "web-1"]


def next_link(text: str) -> str | None:
    found = re.search(r'<a rel="next" href="([^"]+)"', text)
    return unescape(found.group(1)) if found else None


def test_list_pages_by_the_last_id_of_the_page_before(client: Any) -> None:
    everyone = sorted(f"web-{i}" for i in range(12))
    first = page(client, "/?size=5")
    assert ids(first) == everyone[:5] and "1–5" in first
    assert 'rel="first"' not in first
    url = next_link(first)
    assert url == "/?ns=default&size=5&after=web-2&start=6"  # keyset: the next page starts after its last ID
    second = page(client, url)
    assert ids(second) == everyone[5:10] and "6–10" in second and 'rel="first"' in second
    last = page(client, next_link(second) or "")
    assert ids(last) == everyone[10:] and next_link(last) is None


def test_list_pages_as_of_a_point_keep_the_point(client: Any, sample: Sample) -> None:
    # @16: web-1 deleted (and not yet created again): 11 containers, 4 to a page
    seen, url = [], f"/?size=4&at=@{sample.head - 1}"
    while url:
        text = page(client, url)
        assert f"at @{sample.head - 1}" in text
        seen += ids(text)
        url = next_link(text) or ""
        assert not url or f"at=%40{sample.head - 1}" in url or f"at=@{sample.head - 1}" in url
    assert seen == sorted(f"web-{i}" for i in range(12) if i != 1)


def test_list_page_after_a_deleted_id(client: Any) -> None:
    # an ID gone since the page before was shown still marks the place
    assert ids(page(client, "/?after=web-10a&size=2")) == ["web-11", "web-2"]


def test_status_column_when_containers_have_a_status(client: Any) -> None:
    text = page(client, "/")
    assert ("<th>Status</th>" in text) == has_status()


def test_a_real_run_shows_in_the_list_and_on_the_timeline(sample: Sample) -> None:
    assert has_status()  # the status lifecycle is in: ctrledger.Container.status
    with ctrledger.open(sample.path) as store:
        store.started("web-2", pid=4242)
        store.exited("web-2", exit_code=137, reason="OOMKilled")
        store.started("web-2", pid=4343)
        store.started("web-3", pid=99)
        store.paused("web-3")
        client = create_app(store).test_client()
        text = unescape(client.get("/").text)
        status = dict(re.findall(r'class="cid" href="[^"]*">([^<]+)</a>.*?<td class="status">([^<]*)</td>', text, re.S))
        assert status["web-2"] == "Running" and status["web-3"] == "Paused" and status["web-4"] == "Created"
        assert unescape(client.get("/?at=@19").text).count("Exited (137) OOMKilled") == 1
        svg = unescape(client.get("/containers/web-2/timeline.svg").text)
    assert svg.count('class="run') == 2 and 'class="run failed"' in svg and 'class="run open"' in svg


@pytest.mark.parametrize(
    ("status", "text"),
    [
        pytest.param(None, "", id="no-status"),
        pytest.param(SimpleNamespace(state="RUNNING", paused=False), "Running", id="running"),
        pytest.param(SimpleNamespace(state="RUNNING", paused=True), "Paused", id="paused"),
        pytest.param(SimpleNamespace(state="EXITED", exit_code=137, reason="OOMKilled"), "Exited (137) OOMKilled",
                     id="exited"),
        pytest.param(SimpleNamespace(state="CREATED"), "Created", id="created"),
        pytest.param(SimpleNamespace(), "Unknown", id="no-state"),
    ],
)
def test_status_text(status: Any, text: str) -> None:
    assert status_text(SimpleNamespace(status=status)) == text  # type: ignore[arg-type]


# -- one container -------------------------------------------------------------------------------


def test_container_page(client: Any, sample: Sample) -> None:
    text = page(client, "/containers/web-1")
    assert "<svg" in text and text.count('class="mark') >= 4
    assert "The record now" in text and "restore after incident 7" in text
    kinds = re.findall(r'class="kind" href="[^"]*">(\w+)</a>', text)
    assert kinds == ["Created", "Deleted", "SpecUpdated", "ImageChanged", "LabelsChanged", "Created"]  # newest first
    assert "#2" in text  # the second incarnation


def test_container_at_a_version_and_when_it_did_not_exist(client: Any) -> None:
    assert "tier=edge" in page(client, "/containers/web-1?at=v2")
    absent = page(client, "/containers/web-1?at=v5")  # after the delete
    assert 'id="absent"' in absent and "did not exist" in absent
    assert "Deleted" in absent  # its history is still shown


@pytest.mark.parametrize("query", ["at=v2", "ver=2", "ver=6&at=v2"], ids=["typed", "slider", "typed-wins"])
def test_container_at_a_version_from_the_slider(client: Any, query: str) -> None:
    text = page(client, f"/containers/web-1?{query}")
    assert "The record at v2" in text and "tier=edge" in text
    assert 'id="ver" name="ver" min="1" max="6" value="2"' in text  # its versions, at the one shown
    assert '<a href="/?ns=default">default</a>' in text  # the list has no v2: it links to now


def test_container_slider_spans_its_versions(client: Any, sample: Sample) -> None:
    assert 'max="6" value="6"' in page(client, "/containers/web-1")  # now: at its last version
    assert 'max="6" value="2"' in page(client, f"/containers/web-1?at=@{sample.before_edge + 1}")
    text = page(client, "/containers/web-1?at=@12")
    assert f'<a href="/?ns=default&at=@{sample.before_edge}">default</a>' in text  # the list at that point


def test_container_events_are_paged_newest_first(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    with ctrledger.open(path, synchronous="NORMAL") as store:
        store.create(make("busy"))
        for n in range(24):
            store.update(ctrledger.Container(id="busy", labels={"n": str(n)}), "labels.n")
        client = create_app(store).test_client()

        def versions(url: str) -> list[int]:
            row = r'<tr id="e\d+">\s*<td><a href="[^"]*">v(\d+)</a>'
            return [int(v) for v in re.findall(row, client.get(url).text)]

        assert versions("/containers/busy") == list(range(25, 0, -1))  # 100 to a page by default
        newest = unescape(client.get("/containers/busy?size=10").text)
        assert versions("/containers/busy?size=10") == list(range(25, 15, -1))
        assert 'rel="first"' not in newest and "v25–v16 of 25, newest first" in newest
        older = next_link(newest)
        assert older == "/containers/busy?ns=default&size=10&before=v16#events"  # keyset: before the last shown
        assert versions(older) == list(range(15, 5, -1))
        oldest = unescape(client.get("/containers/busy?size=10&before=v6").text)
        assert versions("/containers/busy?size=10&before=v6") == [5, 4, 3, 2, 1]
        assert next_link(oldest) is None and 'rel="first"' in oldest
        assert "25 events" in oldest and oldest.count('class="mark') >= 2  # the timeline has them all
        assert versions("/containers/busy?size=10&before=26") == list(range(25, 15, -1))  # "26" as "v26"
        assert client.get("/containers/busy?size=10&before=v27").status_code == 404


def _table(text: str) -> list[tuple[int, str, list[str]]]:
    """(version, kind, changes as written) of each row of a container page's events table."""
    out = []
    for row in re.findall(r'<tr id="e\d+">(.*?)</tr>', text, re.S):
        version = int(re.search(r">v(\d+)</a>", row).group(1))  # type: ignore[union-attr]
        kind = re.search(r'class="kind" href="[^"]*">(\w+)</a>', row).group(1)  # type: ignore[union-attr]
        changes = [unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r'<span class="change">(.*?)</span>', row)]
        out.append((version, kind, changes))
    return out


def _as_written(changes: tuple[FieldChange, ...]) -> list[str]:
    from ctrledger.ui.app import _value

    return [f"{c.field} {_value(c.old)} → {_value(c.new)}" for c in changes[:4]]


def test_events_are_the_history_read_from_the_audit(tmp_path: Path) -> None:
    """The timeline's and the table's events (audit rows, no event decoded) say what the history
    says: positions, versions, incarnations, kinds, who and why; the table's changes, from the
    states before and after, are the history's; exits carry their code."""
    from ctrledger.ui.timeline import events

    path = tmp_path / "runs.db"
    with ctrledger.open(path, clock=StepClock()) as store:
        store.create(make("job", labels={"a": "1"}), actor="alice", reason="first")
        store.started("job", pid=10)
        store.paused("job")
        store.resumed("job")
        store.exited("job", exit_code=2, reason="Error")
        store.update(ctrledger.Container(id="job", labels={"a": "2", "b": "x"}), "labels.a", "labels.b")
        store.delete("job", actor="bob", reason="done")
        store.create(make("job", image="busybox:2"), actor="carol")
        store.started("job", pid=11)
        store.exited("job", exit_code=0, reason="Completed")
        entries = list(store.history("job"))
        got = list(events(store, "job"))
        assert [(e.position, e.version, e.incarnation, e.kind, e.recorded_at, e.actor, e.reason,
                 e.correlation_id) for e in got] == [
            (h.position, h.version, h.incarnation, h.kind, h.recorded_at, h.actor, h.reason, h.correlation_id)
            for h in entries]
        assert all(e.changes is None for e in got)  # from the audit: not decoded
        client = create_app(store).test_client()
        text = client.get("/containers/job").text
        table = _table(text)
        assert table == [(h.version, h.kind, _as_written(h.changes)) for h in reversed(entries)]
        assert any("status.exit_code ∅ → 2" in c for _, _, cs in table for c in cs)
        svg = unescape(client.get("/containers/job/timeline.svg").text)
        assert svg.count('class="run failed"') == 1 and svg.count('class="run"') == 1 and "exit 2 Error" in svg
        assert svg.count('class="pause"') == 1 and "#2" in svg
        older = _table(client.get("/containers/job?size=3&before=v5").text)
        assert [v for v, _, _ in older] == [4, 3, 2]
        assert older == [r for r in table if r[0] in (4, 3, 2)]
        for h in entries:  # each event's page: what the history says of it
            text = unescape(client.get(f"/containers/job/events/{h.position}").text)
            assert f"v{h.version} (incarnation #{h.incarnation})" in text and h.actor in text
            shown = re.findall(r"<tr><td>([^<]+)</td><td>([^<]*)</td><td>([^<]*)</td></tr>", text)
            from ctrledger.ui.app import _value

            expected = [(c.field, _value(c.old), _value(c.new)) for c in h.changes]
            assert shown == expected, h


def test_event_page(client: Any, sample: Sample) -> None:
    history = [e for e in page(client, "/containers/web-1").split('id="e')[1:]]
    assert history
    text = page(client, f"/containers/web-1/events/{sample.before_edge + 2}")
    assert "ImageChanged" in text and "carol" in text and "upgrade to 1.28" in text
    assert sample.correlation_id in text
    assert "docker.io/library/nginx:1.27" in text and "docker.io/library/nginx:1.28" in text


def test_timeline_marks_link_to_their_events(client: Any, sample: Sample) -> None:
    svg = page(client, "/containers/web-1/timeline.svg")
    links = re.findall(r'<a href="([^"]+)">', svg)
    assert links and all(re.fullmatch(r"/containers/web-1/events/\d+\?ns=default", u) for u in links)
    for url in links:
        assert client.get(url).status_code == 200
    assert "actor: carol" in svg and f"correlation id: {sample.correlation_id}" in svg


def test_diff_page(client: Any) -> None:
    text = page(client, "/containers/web-1/diff?since=v1&until=v4")
    assert re.search(r"web-1: <b>changed</b>", text)
    changed = re.findall(r'<tr class="changed"><td>([^<]+)</td>', text)
    assert changed == ["image", "labels.tier"]
    spec_changes = re.findall(r'<tr class="changed"><td><pre>(.*?)</pre></td><td><pre>(.*?)</pre>', text)
    assert spec_changes == [('      "MODE=a"', '      "MODE=b"')]


def test_diff_across_a_delete(client: Any) -> None:
    assert re.search(r"<b>recreated</b>", page(client, "/containers/web-1/diff?since=v1"))
    assert re.search(r"<b>deleted</b>", page(client, "/containers/web-1/diff?since=v4&until=v5"))


def test_side_by_side_marks_changed_added_and_removed_lines() -> None:
    rows = side_by_side(["a", "b", "c", "d"], ["a", "B", "c", "e", "f"])
    assert [tag for tag, _, _ in rows] == ["same", "changed", "same", "changed", "added"]
    assert side_by_side(["a", "b"], ["b"]) == [("removed", "a", None), ("same", "b", "b")]


# -- audit and integrity -------------------------------------------------------------------------


def test_audit_search(client: Any, sample: Sample) -> None:
    everything = page(client, "/audit")
    assert everything.count('class="cid"') == 17
    by_bob = page(client, "/audit?actor=bob")
    assert re.findall(r">(LabelsChanged|Deleted|Created|ImageChanged)</a></td>", by_bob) == ["LabelsChanged", "Deleted"]
    deleted = page(client, "/audit?kind=Deleted")
    assert deleted.count('class="cid"') == 1 and "incident 7" in deleted
    one_op = page(client, f"/audit?correlation_id={sample.correlation_id}")
    assert one_op.count('class="cid"') == 2  # ImageChanged and SpecUpdated: one update
    window = page(client, "/audit?since=2026-11-21T03:00:13Z&until=2026-11-21T03:00:14Z")
    assert window.count('class="cid"') == 3  # both ends inclusive: 03:00:13 and the two events of 03:00:14


def test_the_audit_pages_by_log_position_and_every_record_appears_once(client: Any, sample: Sample) -> None:
    """Keyset paging: each next link carries the position its page ended with, so a page costs its
    own rows however deep it is; walking the pages gives the search's records in order, once each."""
    url, seen, starts = "/audit?actor=alice&size=3", [], []
    while url:
        text = page(client, url)
        seen += [int(p) for p in re.findall(r"<td>@(\d+)</td>", text)]
        starts.append(re.search(r'class="pager">\s*(\d+)–', text).group(1))  # type: ignore[union-attr]
        nxt = re.search(r'rel="next" href="([^"]+)"', text)
        url = nxt.group(1) if nxt else ""
        assert ("page=" not in url) and (not url or "after=" in url)
    with ctrledger.open(sample.path, mode="r") as store:
        want = [a.position for a in store.audit(actor="alice")]
    assert seen == want and len(want) > 6
    assert starts == [str(i) for i in range(1, len(want) + 1, 3)]
    assert 'rel="first"' in text  # the last page links back to the first


def test_audit_rows_link_to_the_container_at_that_moment(client: Any, sample: Sample) -> None:
    raw = client.get("/audit?actor=bob").text
    links = re.findall(r'class="cid" href="([^"]+)"', raw)
    assert links == [f"/containers/web-1?ns=default&amp;at=@{sample.before_edge + 1}",
                     f"/containers/web-1?ns=default&amp;at=@{sample.before_edge + 4}"]
    assert "tier=edge" in page(client, unescape(links[0]))


def test_integrity_of_a_sound_log(client: Any) -> None:
    text = page(client, "/integrity")
    assert "✔ Verified: positions 1–17" in text
    assert re.search(r"<th>events</th><td>17</td>", text)


def test_integrity_against_a_kept_checkpoint(sample: Sample) -> None:
    with ctrledger.open(sample.path) as store:
        kept = store.checkpoint()
        store.update(ctrledger.Container(id="web-2", labels={"x": "1"}), "labels.x")
        text = unescape(create_app(store, checkpoint=kept).test_client().get("/integrity").text)
    assert "consistent with the kept checkpoint of 17 events" in text
    assert re.search(r'id="kept">\s*<tr><th>events</th><td>17</td>', text)


def test_a_forged_log_is_shown_as_such(sample: Sample) -> None:
    conn = sqlite3.connect(sample.path)
    with conn:
        state = bytearray(conn.execute("SELECT state FROM stored_events WHERE rowid=5").fetchone()[0])
        state[-3] ^= 0x01
        conn.execute("UPDATE stored_events SET state=? WHERE rowid=5", (bytes(state),))
    conn.close()
    with ctrledger.open(sample.path) as store:
        response = create_app(store).test_client().get("/integrity")
    assert response.status_code == 200
    text = unescape(response.text)
    assert "✘ FAILED: this log has been altered" in text and "first at position 5" in text
    assert "Verified" not in text


# -- bad parameters: a clear 4xx page, nothing written -----------------------------------------------


@pytest.mark.parametrize(
    ("url", "status", "says"),
    [
        pytest.param("/?at=yesterday", 400, "'yesterday' is not an ISO-8601 time", id="bad-point"),
        pytest.param("/?at=@99", 400, "position 99 is in the future", id="future-position"),
        pytest.param("/?at=2027-01-01T00:00:00Z", 400, "is in the future", id="future-time"),
        pytest.param("/?at=v3", 400, "a Version belongs to one container", id="version-for-a-list"),
        pytest.param("/?at=99999999999d", 400, "'99999999999d' is out of range", id="point-out-of-range"),
        pytest.param("/?filter=labels.env==", 400, "", id="bad-filter"),
        pytest.param("/?ns=bad/ns", 400, "namespace", id="bad-namespace"),
        pytest.param("/?page=999999999999", 400, "page: the list is paged by the ID a page ends with (after=ID",
                     id="huge-page"),
        pytest.param("/?after=zzz", 404, "no containers in namespace 'default' after 'zzz': past the last page",
                     id="after-past-the-end"),
        pytest.param("/?after=web-9&at=@3", 404, "after 'web-9' at that point: past the last page",
                     id="after-past-the-end-then"),
        pytest.param("/?after=web-1&start=x", 400, "start: 'x' is not a whole number", id="bad-start"),
        pytest.param("/?size=5000", 400, "size: 5000 is not between 1 and 1000", id="page-too-large"),
        pytest.param("/?pos=-1", 400, "pos: '-1' is not a whole number", id="bad-slider"),
        pytest.param("/containers/web-1?ver=0", 400, "ver: 0 is not between 1", id="bad-version-slider"),
        pytest.param("/containers/web-1?ver=7", 400, "version 7 is in the future", id="version-slider-past-the-end"),
        pytest.param("/containers/nope", 404, 'container "nope" in namespace "default": not found',
                     id="unknown-container"),
        pytest.param("/containers/web-1?at=v99", 400, "version 99 is in the future", id="future-version"),
        pytest.param("/containers/web-1?before=v99", 404, "before: v99 is past the last event of 'web-1'",
                     id="events-before-past-the-end"),
        pytest.param("/containers/web-1?before=v1", 404, "has no event before v1", id="events-before-the-first"),
        pytest.param("/containers/web-1?before=x7", 400, "before: 'x7' is not a version", id="events-bad-before"),
        pytest.param("/containers/web-1?before=v0", 400, "before: 'v0' is not a version", id="events-before-v0"),
        pytest.param("/containers/web-1?axis=log", 400, "axis: 'log' is neither", id="bad-axis"),
        pytest.param("/containers/web-1/events/1", 404, "has no event at position 1", id="event-of-another"),
        pytest.param("/containers/nope/events/1", 404, "not found", id="event-of-unknown"),
        pytest.param("/containers/nope/diff?since=v1", 404, "not found", id="diff-of-unknown"),
        pytest.param("/containers/web-1/diff?since=bogus", 400, "not an ISO-8601 time", id="diff-bad-point"),
        pytest.param("/containers/nope/timeline.svg", 404, "not found", id="svg-of-unknown"),
        pytest.param("/audit?kind=Exploded", 400, "unknown event kind(s) 'Exploded'; known: Created", id="bad-kind"),
        pytest.param("/audit?since=@3&until=@1", 400, "after", id="audit-reversed-range"),
        pytest.param("/audit?page=2", 400, "paged by the log position a page ends with", id="audit-page-number"),
        pytest.param("/audit?after=1000", 404, "no audit records match after position 1000", id="audit-after-the-end"),
        pytest.param("/audit?after=x", 400, "after: 'x' is not a whole number", id="audit-bad-after"),
        pytest.param("/audit?size=0", 400, "size: 0 is not between 1", id="audit-bad-size"),
        pytest.param("/nowhere", 404, "", id="no-such-page"),
    ],
)
def test_bad_parameters_get_a_clear_4xx_page(client: Any, url: str, status: int, says: str) -> None:
    text = page(client, url, status)
    assert f"<h1>{status}:" in text
    assert says in message(text)


@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
def test_no_route_writes(client: Any, method: str) -> None:
    for url in ("/", "/containers/web-1", "/audit", "/integrity"):
        assert getattr(client, method)(url).status_code == 405


def test_assets_are_served_by_the_package(client: Any) -> None:
    text = client.get("/").text
    assets = re.findall(r'(?:href|src)="([^"]+\.(?:css|js))"', text)
    assert sorted(assets) == ["/static/ui.css", "/static/ui.js"]
    assert not re.search(r'(?:href|src)="(?:https?:)?//', text), "a page loads something from the network"
    for url in assets:
        assert client.get(url).status_code == 200


def test_a_foreign_host_header_is_refused_on_loopback(sample: Sample) -> None:
    from ctrledger.ui.serve import make_server

    with ctrledger.open(sample.path) as store:
        app = create_app(store)
        server = make_server(app, "127.0.0.1", 0)
        server.close()
        test = app.test_client()
        assert test.get("/", headers={"Host": "127.0.0.1:8765"}).status_code == 200
        assert test.get("/", headers={"Host": "evil.example:8765"}).status_code == 400


# -- the SVG timeline ----------------------------------------------------------------------------


def entry(kind: str, version: int, second: int, *changes: FieldChange, incarnation: int = 1) -> HistoryEntry:
    return HistoryEntry(
        namespace="default", id="web-1", version=version, incarnation=incarnation, position=version, kind=kind,
        recorded_at=datetime(2026, 11, 21, 3, 0, second, tzinfo=UTC), actor="kubelet", reason="", correlation_id="c",
        fieldpaths=(), client="cri", changes=changes,
    )


def test_timeline_draws_runs_with_exit_codes_and_pauses() -> None:
    svg = render_svg([
        entry("Created", 1, 0), entry("Started", 2, 5), entry("Paused", 3, 10), entry("Resumed", 4, 20),
        entry("Exited", 5, 30, FieldChange("status.exit_code", None, 137),
              FieldChange("status.reason", "", "OOMKilled")),
        entry("Started", 6, 35),
    ], title="web-1", width=2000)
    assert svg.count('class="run') == 2  # two runs: the first ended, the second still open
    assert 'class="run failed"' in svg and "exit 137 OOMKilled" in svg
    assert 'class="run open"' in svg
    assert svg.count('class="pause"') == 1
    assert svg.count('class="mark') == 6


def test_timeline_reads_the_exit_codes_of_the_latest_runs_only() -> None:
    from ctrledger.ui.timeline import Event, Timeline

    def ev(kind: str, n: int) -> Event:
        return Event(n, n, 1, kind, datetime(2026, 11, 21, 3, 0, n, tzinfo=UTC), "kubelet", "", "")

    runs = [ev("Created", 1)]
    for n in range(2, 22, 2):
        runs += [ev("Started", n), ev("Exited", n + 1)]
    asked: list[int] = []

    def exit_of(e: Event) -> tuple[int | None, str]:
        asked.append(e.position)
        return (1, "Error") if e.position % 4 == 3 else (0, "Completed")

    tl = Timeline.of(runs)
    tl.resolve_exits(exit_of, limit=3)
    assert asked == [21, 19, 17]  # the latest three, newest first
    assert [r.css for r in tl.runs][-3:] == ["run", "run failed", "run"]  # exits @17, @19, @21
    assert {r.label for r in tl.runs[:-3]} == {"exited"} and {r.css for r in tl.runs[:-3]} == {"run"}


def test_timeline_of_a_long_history_folds_crowded_marks() -> None:
    entries = [entry("Created", 1, 0)] + [
        entry("LabelsChanged", v, 0, FieldChange("labels.n", str(v - 1), str(v))) for v in range(2, 5001)]
    svg = render_svg(entries, title="busy", href=lambda e: f"/e/{e.position}")
    marks = svg.count('class="mark')
    assert 1 < marks < 600, marks
    assert "4999 events, from" in svg or "events, from" in svg
    sequence = render_svg(entries, title="busy", axis="sequence")
    assert sequence.count('class="mark') > marks  # spread in order, fewer fold
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")


def test_timeline_escapes_what_it_writes() -> None:
    e = entry("Created", 1, 0)
    svg = render_svg([HistoryEntry(**{**e.__dict__, "actor": "<script>alert(1)</script>"})], title="a&b")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a&amp;b" in svg


# -- the commands --------------------------------------------------------------------------------


def test_timeline_command_writes_the_svg(sample: Sample, tmp_path: Path) -> None:
    before = digest(sample.path)
    out = tmp_path / "web-1.svg"
    result = CliRunner().invoke(cli, ["timeline", "web-1", "--db", str(sample.path), "--svg", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.startswith("<svg") and text.count('class="mark') >= 4 and "#2" in text
    assert "<a href" not in text  # a file has nowhere to link to: the tooltips say it all
    assert digest(sample.path) == before


@pytest.mark.parametrize(
    ("args", "says"),
    [
        pytest.param(["nope"], 'container "nope" in namespace "default": not found', id="unknown-container"),
        pytest.param(["web-1", "--db", "missing.db"], "no store at 'missing.db'", id="missing-store"),
    ],
)
def test_timeline_command_refuses_and_leaves_nothing(
    sample: Sample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], says: str
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out.svg"
    db = [] if "--db" in args else ["--db", str(sample.path)]
    result = CliRunner().invoke(cli, ["timeline", *args, *db, "--svg", str(out)])
    assert result.exit_code == 1 and says in result.output
    assert not out.exists() and not (tmp_path / "missing.db").exists()


def test_ui_without_the_extra_says_how_to_install_it(sample: Sample, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "flask", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "ctrledger.ui.app", raising=False)
    result = CliRunner().invoke(cli, ["ui", "--db", str(sample.path)])
    assert result.exit_code == 1
    assert "the web view needs the ui extra (flask is not installed): pip install 'ctrledger[ui]'" in result.output


def test_ui_refuses_a_file_that_is_not_a_checkpoint(sample: Sample, tmp_path: Path) -> None:
    bad = tmp_path / "cp.json"
    bad.write_text("[1, 2]")
    result = CliRunner().invoke(cli, ["ui", "--db", str(sample.path), "--checkpoint", str(bad)])
    assert result.exit_code == 1 and "is not a checkpoint: not a JSON object" in result.output


def test_ui_refuses_a_missing_store_without_creating_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["ui", "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 1 and "no store at" in result.output
    assert not (tmp_path / "none.db").exists()


def test_other_commands_do_not_import_the_web_stack() -> None:
    code = "import ctrledger.cli, sys; print(sorted(m for m in ('flask', 'waitress', 'jinja2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_ui_serves_on_loopback_until_interrupted(sample: Sample) -> None:
    before = digest(sample.path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ctrledger", "ui", "--db", str(sample.path), "--port", "0"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # Ctrl-C as at a terminal, even if this test process ignores SIGINT (children inherit that)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        found = re.search(r"on (http://127\.0\.0\.1:(\d+)/) \(Ctrl-C to stop\)", line)
        assert found, line
        with urllib.request.urlopen(found.group(1), timeout=10) as response:  # noqa: S310 - loopback
            assert response.status == 200 and b"web-11" in response.read()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0  # generous: a loaded machine is slow to wind threads down
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert digest(sample.path) == before
