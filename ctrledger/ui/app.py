"""The web view: a Flask application over one open ``ctrledger.Store``, read-only.

=====================================  ======================================================
route                                  page
=====================================  ======================================================
``/``                                  containers of a namespace (``ns``), matching any of the
                                       ``filter`` parameters, now or at a point (``at``, or the
                                       slider's ``pos``), ``size`` at a time from the first ID
                                       ``after`` the last of the page before (keyset paging)
``/containers/<id>``                   one container at a point (``at``, or the slider's
                                       ``ver``): its record, its timeline (SVG), its events
                                       newest first, ``size`` at a time ``before`` a version
``/containers/<id>/timeline.svg``      the timeline alone, as ``ctrledger timeline --svg``
``/containers/<id>/events/<pos>``      one event: kind, time, actor, reason, correlation id,
                                       what it changed
``/containers/<id>/diff``              the container between two points (``since``, ``until``)
``/audit``                             who did what: by actor, kind, time, correlation id,
                                       namespace, container; ``size`` at a time from the log
                                       position ``after`` the last of the page before
``/integrity``                         ``ctrledger.verify`` of the log, the log's checkpoint now,
                                       and the checkpoint given to ``ctrledger ui --checkpoint``
=====================================  ======================================================

Points are typed as on the command line (``@123``, ``v7``, ``2h``, an ISO time; read by
``ctrledger.domain.points``). Every route answers GET only; nothing here writes. A store
error becomes a page with its message and the status of its category (``NotFound`` 404,
``InvalidArgument`` 400, ``FailedPrecondition``/``Conflict`` 409, ``Unavailable`` 503); a bad
parameter of the view's own (a page that is not a number, a page past the end) is a 400 or
404 page too.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from itertools import zip_longest
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from flask import Flask, Response, render_template, request, url_for
from markupsafe import Markup
from werkzeug.exceptions import HTTPException, SecurityError

import ctrledger
from ctrledger.domain.container import EVENT_CLASSES
from ctrledger.domain.history import diff_containers
from ctrledger.domain.points import TextPoint, read_point

from .timeline import Axis, Event, events, exits, render_svg

__all__ = ["PAGE_SIZE", "EVENTS_PAGE_SIZE", "create_app", "has_status", "status_text"]

T = TypeVar("T")

PAGE_SIZE = 100
EVENTS_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

_STATUS_OF = {
    ctrledger.NotFound: 404,
    ctrledger.InvalidArgument: 400,
    ctrledger.AlreadyExists: 409,
    ctrledger.Conflict: 409,
    ctrledger.FailedPrecondition: 409,
    ctrledger.Unavailable: 503,
}


class BadParameter(Exception):
    """A parameter of the view's own is wrong: a 4xx page with this message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def has_status() -> bool:
    """Whether this ctrledger's containers carry a run-time ``status`` (the status lifecycle)."""
    return "status" in {f.name for f in dataclasses.fields(ctrledger.Container)}


def status_text(container: ctrledger.Container) -> str:
    """A container's status as ``crictl ps`` words it: ``Running``, ``Exited (137) OOMKilled``, ``Created``.

    Read with ``getattr``: the status is drawn when this ctrledger has it, and absent parts are skipped.
    """
    status = getattr(container, "status", None)
    if status is None:
        return ""
    state = str(getattr(status, "state", "") or "UNKNOWN")
    if getattr(status, "paused", False) and state == "RUNNING":
        return "Paused"
    words = [state.capitalize()]
    if state == "EXITED":
        code = getattr(status, "exit_code", None)
        if code is not None:
            words.append(f"({code})")
        reason = getattr(status, "reason", "")
        if reason:
            words.append(str(reason))
    return " ".join(words)


def _when(t: datetime | None) -> str:
    if t is None:
        return ""
    return t.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds").replace("T", " ") + "Z"


def _value(v: Any) -> str:
    """A field value in a cell: as ``ctrledger history`` writes it."""
    if v is None:
        return "∅"
    if isinstance(v, ctrledger.Payload):
        return f"{v.type_url} ({len(v.value)} bytes)"
    if isinstance(v, ctrledger.Runtime):
        return v.name + (f" [{_value(v.options)}]" if v.options is not None else "")
    return str(v)


def _spec_lines(spec: ctrledger.Payload | None) -> list[str]:
    """A spec as lines to compare: its JSON pretty-printed with sorted keys, else a note of its bytes."""
    if spec is None:
        return []
    try:
        return json.dumps(json.loads(spec.value.decode("utf-8")), indent=2, sort_keys=True).splitlines()
    except (UnicodeDecodeError, ValueError):
        return [f"({len(spec.value)} bytes, not JSON)", spec.value[:48].hex()]


def side_by_side(left: list[str], right: list[str]) -> list[tuple[str, str | None, str | None]]:
    """``left`` and ``right`` aligned line by line: (``same``/``changed``/``removed``/``added``, left, right)."""
    rows: list[tuple[str, str | None, str | None]] = []
    matcher = difflib.SequenceMatcher(None, left, right, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows += [("same", a, b) for a, b in zip(left[i1:i2], right[j1:j2], strict=True)]
        elif tag == "replace":
            for a, b in zip_longest(left[i1:i2], right[j1:j2]):
                rows.append(("changed" if a is not None and b is not None else ("removed" if b is None else "added"),
                             a, b))
        elif tag == "delete":
            rows += [("removed", a, None) for a in left[i1:i2]]
        else:
            rows += [("added", None, b) for b in right[j1:j2]]
    return rows


def _field_rows(
    before: ctrledger.Container | None, after: ctrledger.Container | None
) -> list[tuple[str, str, str, bool]]:
    """(field, before, after, changed) for the record's fields, labels and extensions key by key."""
    rows = []
    for name in ("image", "runtime", "snapshotter", "snapshot_key", "sandbox"):
        a = getattr(before, name) if before is not None else None
        b = getattr(after, name) if after is not None else None
        if a in ("", None) and b in ("", None):
            continue  # empty at both points: nothing to compare
        rows.append((name, _value(a), _value(b), a != b))
    if has_status():
        a_s = status_text(before) if before is not None else None
        b_s = status_text(after) if after is not None else None
        rows.append(("status", _value(a_s), _value(b_s), a_s != b_s))
    for group in ("labels", "extensions"):
        old: dict[str, Any] = dict(getattr(before, group)) if before is not None else {}
        new: dict[str, Any] = dict(getattr(after, group)) if after is not None else {}
        for key in sorted(set(old) | set(new)):
            rows.append((f"{group}.{key}", _value(old.get(key)), _value(new.get(key)), old.get(key) != new.get(key)))
    return rows


def _window(items: Iterator[T], start: int, count: int) -> tuple[list[T], int]:
    """Items ``start`` to ``start + count`` (and one more, to tell whether there are more), and how
    many there were before the window; the iterator is closed either way."""
    rows: list[T] = []
    seen = 0
    try:
        for item in items:
            if seen >= start:
                rows.append(item)
                if len(rows) > count:
                    break
            else:
                seen += 1
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
    return rows, seen


def _with_changes(store: ctrledger.Store, cid: str, ns: str, rows: list[Event]) -> list[Event]:
    """``rows`` (consecutive versions, newest first) with what each changed and each exit's code:
    the container's states at those versions (and the one before), compared pairwise, so a page
    of 100 events reads 101 records rather than decoding the whole history before them."""
    if not rows or all(e.changes is not None for e in rows):
        return rows  # from a history: they say it already
    states: dict[int, ctrledger.Container | None] = {0: None}
    for v in range(max(rows[-1].version - 1, 1), rows[0].version + 1):
        try:
            states[v] = store.get(cid, namespace=ns, as_of=ctrledger.Version(v))
        except ctrledger.NotFound:
            states[v] = None  # deleted by then
    out = []
    for e in rows:
        before, after = states[e.version - 1], states[e.version]
        changes = () if e.kind == "Deleted" else tuple(diff_containers(before, after))
        found = e.exit
        if e.kind == "Exited" and after is not None:
            found = (after.status.exit_code, after.status.reason or "")
        out.append(dataclasses.replace(e, changes=changes, exit=found))
    return out


def create_app(
    store: ctrledger.Store,
    *,
    source: str = "",
    checkpoint: ctrledger.Checkpoint | None = None,
    now: Callable[[], datetime] | None = None,
    namespace: str = "default",
) -> Flask:
    """The web view of ``store`` (kept open by the caller for as long as the application serves).

    ``source``: the store as the user named it, shown in every page's header; ``checkpoint``:
    one kept elsewhere, which the integrity page checks the log against; ``now``: the clock that
    relative points (``2h``) count back from; ``namespace``: the one a page shows when none is asked for.
    """
    app = Flask(__name__, static_folder="static", template_folder="templates")
    clock = now or (lambda: datetime.now(UTC))
    kinds = sorted(cls.__name__ for cls in EVENT_CLASSES)
    app.jinja_env.filters["when"] = _when
    app.jinja_env.filters["value"] = _value
    app.jinja_env.globals.update(source=source, has_status=has_status(), status_text=status_text)

    # -- parameters ---------------------------------------------------------------

    def arg(name: str) -> str:
        return request.args.get(name, "").strip()

    def point(name: str) -> TextPoint | None:
        text = arg(name)
        if not text:
            return None
        try:
            return read_point(text, clock())
        except (OverflowError, ValueError):
            raise BadParameter(f"{name}: {text!r} is out of range") from None

    def number(name: str, default: int, *, low: int = 1, high: int | None = None) -> int:
        text = arg(name)
        if not text:
            return default
        if not text.isdigit():
            raise BadParameter(f"{name}: {text!r} is not a whole number")
        value = int(text)
        if value < low or (high is not None and value > high):
            raise BadParameter(f"{name}: {value} is not between {low} and {high if high is not None else '∞'}")
        return value

    default_namespace = namespace

    def current_namespace() -> str:
        return arg("ns") or default_namespace

    def version_key(name: str) -> int | None:
        """A version given as ``v7`` or ``7`` (a keyset: the events before it), or None."""
        text = arg(name)
        if not text:
            return None
        digits = text[1:] if text[:1] in ("v", "V") else text
        if not digits.isdigit() or int(digits) < 1:
            raise BadParameter(f"{name}: {text!r} is not a version (v1, v2, ...)")
        return int(digits)

    def axis() -> Axis:
        text = arg("axis") or "time"
        if text not in ("time", "sequence"):
            raise BadParameter(f"axis: {text!r} is neither 'time' nor 'sequence'")
        return "time" if text == "time" else "sequence"

    def link(endpoint: str, **params: Any) -> str:
        return url_for(endpoint, **{k: v for k, v in params.items() if v not in (None, "")})

    app.jinja_env.globals["link"] = link

    @app.context_processor
    def prefixes() -> dict[str, str]:
        # Rows link with these (one url_for per page, not one per row: 5,000-event pages stay quick).
        return {"cprefix": url_for("container", cid="_")[:-1]}

    def container_base(cid: str) -> str:
        return url_for("container", cid=cid)

    # -- errors -------------------------------------------------------------------------

    @app.errorhandler(ctrledger.StoreError)
    def store_error(e: ctrledger.StoreError) -> tuple[str, int]:
        status = next((code for cls, code in _STATUS_OF.items() if isinstance(e, cls)), 500)
        return render_template("error.html", status=status, message=str(e)), status

    @app.errorhandler(BadParameter)
    def bad_parameter(e: BadParameter) -> tuple[str, int]:
        return render_template("error.html", status=e.status, message=str(e)), e.status

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> tuple[str, int] | Response:
        status = e.code or 500
        if isinstance(e, SecurityError):  # a Host header not ours: no page (it would link to that host)
            return Response(f"{status}: {e.description}\n", status=status, mimetype="text/plain")
        return render_template("error.html", status=status, message=e.description or e.name), status

    # -- pages ------------------------------------------------------------------------------

    @app.get("/")
    def containers() -> str:
        ns = current_namespace()
        filters = [f for f in request.args.getlist("filter") if f.strip()]
        at = point("at")
        pos_text = arg("pos")
        if at is None and pos_text:
            at = ctrledger.Position(number("pos", 0, low=0))
        if "page" in request.args:
            raise BadParameter("page: the list is paged by the ID a page ends with (after=ID, as its next link "
                               "has it), not by number")
        after = request.args.get("after", "")  # keyset paging: the last ID of the page before
        first = number("start", 1)  # the number of this page's first row (for the counter only)
        size = number("size", PAGE_SIZE, high=MAX_PAGE_SIZE)
        head = store.position
        found, _ = _window(store.scan(*filters, namespace=ns, as_of=at, after=after), 0, size)
        if after and not found:
            raise BadParameter(f"no containers in namespace {ns!r} after {after!r}"
                               + (" at that point" if at is not None else "") + ": past the last page", 404)
        rows, more = found[:size], len(found) > size
        at_text = arg("at") or (f"@{at.number}" if isinstance(at, ctrledger.Position) else "")
        return render_template(
            "containers.html", ns=ns, filters=filters, rows=rows, more=more, after=after, size=size, head=head,
            at=at_text, slider=at.number if isinstance(at, ctrledger.Position) else head, first=first,
        )

    def entry_href(cid: str, ns: str) -> Callable[[Event], str]:
        base = container_base(cid) + "/events/"
        suffix = "?" + urlencode({"ns": ns})
        return lambda e: f"{base}{e.position}{suffix}"

    @app.get("/containers/<cid>/timeline.svg")
    def timeline_svg(cid: str) -> Response:
        ns = current_namespace()
        svg = render_svg(events(store, cid, namespace=ns), title=f"{cid} in {ns}", axis=axis(),
                         href=entry_href(cid, ns), exit_of=exits(store, cid, namespace=ns))
        return Response(svg, mimetype="image/svg+xml")

    @app.get("/containers/<cid>/events/<int:position>")
    def event(cid: str, position: int) -> str:
        ns = current_namespace()
        found = None
        before = None
        for e in events(store, cid, namespace=ns):  # its audit rows, up to that one
            if e.position == position:
                found = e
                break
            if e.position > position:
                break
            before = e
        if found is None:
            raise BadParameter(f"container {cid!r} in namespace {ns!r} has no event at position {position}", 404)
        found = _with_changes(store, cid, ns, [found])[0]
        return render_template("event.html", ns=ns, cid=cid, e=found, before=before)

    @app.get("/containers/<cid>/diff")
    def diff(cid: str) -> str:
        ns = current_namespace()
        since_text, until_text = arg("since") or "v1", arg("until")
        since = point("since") or read_point(since_text, clock())
        d = store.diff(cid, namespace=ns, since=since, until=point("until"))
        spec_rows = side_by_side(
            _spec_lines(d.before.spec if d.before else None), _spec_lines(d.after.spec if d.after else None))
        return render_template(
            "diff.html", ns=ns, cid=cid, d=d, since=since_text, until=until_text,
            rows=_field_rows(d.before, d.after), spec_rows=spec_rows,
            spec_changed=any(tag != "same" for tag, _, _ in spec_rows),
        )

    @app.get("/containers/<cid>")
    def container(cid: str) -> str:
        ns = current_namespace()
        at = point("at")
        if at is None and arg("ver"):  # the slider over the container's versions, when nothing is typed
            at = ctrledger.Version(number("ver", 1))
        at_text = arg("at") or (f"v{at.number}" if isinstance(at, ctrledger.Version) else "")
        size = number("size", EVENTS_PAGE_SIZE, high=MAX_PAGE_SIZE)
        before = version_key("before")
        entries = events(store, cid, namespace=ns)  # NotFound: the name never existed
        exit_of = exits(store, cid, namespace=ns)
        try:
            current = store.get(cid, namespace=ns, as_of=at) if at is not None else store.get(cid, namespace=ns)
            absent = ""
        except ctrledger.NotFound as e:
            current, absent = None, str(e)
        # One pass over its audit rows: the timeline takes every event; the table keeps the newest
        # ``size`` before ``before`` (keyset paging by version, newest first).
        window: deque[Event] = deque(maxlen=size)
        count = [0]
        older = [False]

        def tap(items: Iterable[Event]) -> Iterator[Event]:
            for e in items:
                count[0] += 1
                if before is None or e.version < before:
                    if len(window) == size:
                        older[0] = True
                    window.append(e)
                yield e

        svg = render_svg(tap(entries), title=f"{cid} in {ns}", axis=axis(), href=entry_href(cid, ns),
                         exit_of=exit_of)
        if before is not None and before > count[0] + 1:
            raise BadParameter(f"before: v{before} is past the last event of {cid!r} in namespace {ns!r} "
                               f"(v{count[0]}; leave it out for the newest events)", 404)
        if before is not None and not window:
            raise BadParameter(f"before: {cid!r} in namespace {ns!r} has no event before v{before}", 404)
        rows = _with_changes(store, cid, ns, list(reversed(window)))
        return render_template(
            "container.html", ns=ns, cid=cid, c=current, absent=absent, at=at_text, svg=Markup(svg),
            list_at="" if isinstance(at, ctrledger.Version) else at_text,  # a version is no point for the list
            slider=at.number if isinstance(at, ctrledger.Version) else (
                current.version if current is not None and at is not None else count[0]),
            events=rows, total=count[0], before=before, older=older[0], axis=arg("axis") or "time",
            size=size if size != EVENTS_PAGE_SIZE else None,
        )

    @app.get("/audit")
    def audit() -> str:
        ns = arg("ns")
        chosen = [k for k in request.args.getlist("kind") if k.strip()]
        if "page" in request.args:
            raise BadParameter("page: the audit is paged by the log position a page ends with (after=N, as its "
                               "next link has it), not by number")
        after = number("after", 0, low=0) if arg("after") else None  # keyset paging
        first = number("start", 1)  # the number of this page's first row (for the counter only)
        size = number("size", PAGE_SIZE, high=MAX_PAGE_SIZE)
        records = store.audit(
            actor=arg("actor") or None, since=point("since"), until=point("until"), kinds=chosen or None,
            namespace=ns or None, id=arg("id") or None, correlation_id=arg("correlation_id") or None,
            after=None if after is None else ctrledger.Position(after),
        )
        found, _ = _window(records, 0, size)
        if after is not None and not found:
            raise BadParameter(f"no audit records match after position {after}: past the last page", 404)
        rows, more = found[:size], len(found) > size
        form = {name: arg(name) for name in ("actor", "since", "until", "correlation_id", "ns", "id")}
        return render_template(
            "audit.html", rows=rows, more=more, after=after, size=size if size != PAGE_SIZE else None,
            kinds=kinds, chosen=chosen, form=form, first=first,
        )

    @app.get("/integrity")
    def integrity() -> str:
        report = ctrledger.verify(store, checkpoint)
        head = store.checkpoint()
        return render_template("integrity.html", report=report, head=head, kept=checkpoint)

    @app.after_request
    def no_store(response: Response) -> Response:
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    app.jinja_env.globals["quote"] = quote
    return app
