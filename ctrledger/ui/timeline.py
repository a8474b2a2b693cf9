"""One container's history drawn on a time axis, as a standalone SVG document.

The same renderer draws the timeline of the web view's container page and the file
``ctrledger timeline ID --svg FILE`` writes. It reads ``Store.history`` records
(:class:`ctrledger.HistoryEntry`), or the lighter :class:`Event` records :func:`events` reads
from ``Store.audit`` (what the web view draws from: the read model's rows of that container,
no event of the log decoded; the exit codes of the latest runs read by :func:`exits`), in one
pass, and writes tooltips and links only for the marks it draws.

Three lanes, one above the other:

=============  ==========================================================================
lane           what it shows
=============  ==========================================================================
incarnations   a bar per life of the name: from ``Created`` to ``Deleted`` (a name deleted
               and created again has a second bar, "#2"); a bar still open runs to the end
runs           a bar per run: from ``Started`` to ``Exited`` (labelled with the exit code and
               reason), with the paused stretches (``Paused`` to ``Resumed``) hatched on it
changes        a mark per other event: labels, image, spec, snapshot key, extensions, ...
=============  ==========================================================================

Every event is also a mark on its lane (created, deleted, started, exited, ...), with a
``<title>`` (the tooltip: version, kind, time, actor, reason, correlation id) and, when
``href`` is given, a link to the event. Marks closer than a few pixels are drawn as one, its
tooltip counting the events it stands for, so 5,000 events stay a readable picture of a few
hundred elements.

The axis is time (``axis="time"``), or the events' order (``axis="sequence"``: evenly
spaced, for a history whose events crowd into a few moments).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import Literal

import ctrledger

__all__ = ["Axis", "Event", "Timeline", "events", "exits", "lane_of", "render_svg"]

Axis = Literal["time", "sequence"]

LIFECYCLE = {"Created", "Deleted"}
RUNS = {"Started", "Exited", "Paused", "Resumed", "ResourcesUpdated"}

WIDTH = 1200
LEFT = 110  # the lane names
RIGHT = 20
TOP = 28  # the axis labels
LANE = 34  # one lane's height
BAR = 16
BUCKET = 4.0  # marks closer than this (pixels) are drawn as one
MARGIN = 0.04  # of the span, after the last event
EXIT_LOOKUPS = 200  # runs whose exit code is read for the picture, the latest first

_STYLE = """
.tl text { font: 11px system-ui, sans-serif; fill: #333; }
.tl .lane-name { font-weight: 600; fill: #555; }
.tl .tick { stroke: #ddd; }
.tl .inc { fill: #cfe3ff; stroke: #5b8fd8; }
.tl .run { fill: #c9efcf; stroke: #3f9a52; }
.tl .run.failed { fill: #f8d0cc; stroke: #c0392b; }
.tl .pause { fill: url(#hatch); stroke: #8a6d00; }
.tl .open { stroke-dasharray: 4 2; }
.tl .mark { stroke: #fff; stroke-width: 1; }
.tl .k-Created { fill: #2e7d32; } .tl .k-Deleted { fill: #c62828; }
.tl .k-Started { fill: #2e7d32; } .tl .k-Exited { fill: #6d4c41; }
.tl .k-Paused, .tl .k-Resumed { fill: #8a6d00; }
.tl .k-change { fill: #1565c0; } .tl .k-many { fill: #6a1b9a; }
.tl a:hover .mark, .tl a:focus .mark { stroke: #000; stroke-width: 2; }
"""


_LANES = {**dict.fromkeys(LIFECYCLE, 0), **dict.fromkeys(RUNS, 1)}


def lane_of(kind: str) -> int:
    """The lane an event kind is drawn on: 0 incarnations, 1 runs, 2 changes."""
    return _LANES.get(kind, 2)


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs a setattr call per field
class Event:
    """One event as the timeline and the container page's table show it.

    From a ``Store.history`` record (:meth:`of_entry`: with what it changed and, for an
    ``Exited``, its exit code and reason), or from a ``Store.audit`` record (:func:`events`:
    without them, read from the read model without decoding the log's events).
    """

    position: int
    version: int
    incarnation: int
    kind: str
    recorded_at: datetime
    actor: str
    reason: str
    correlation_id: str
    fieldpaths: tuple[str, ...] = ()
    changes: tuple[ctrledger.FieldChange, ...] | None = None
    """What it changed; None when not read (an audit record does not say)."""
    exit: tuple[int | None, str] | None = None
    """An ``Exited``'s (exit code, reason), when known."""
    client: str = ""

    @classmethod
    def of_entry(cls, e: ctrledger.HistoryEntry) -> Event:
        exit_ = None
        if e.kind == "Exited":
            code, why = None, ""
            for change in e.changes:
                name = change.field.rsplit(".", 1)[-1]
                if name == "exit_code":
                    code = change.new
                elif name == "reason":
                    why = str(change.new or "")
            exit_ = (code if isinstance(code, int) else None, why)
        return cls(e.position, e.version, e.incarnation, e.kind, e.recorded_at, e.actor, e.reason,
                   e.correlation_id, tuple(e.fieldpaths), tuple(e.changes), exit_, e.client)

    def exit_text(self) -> str:
        """``exit 137 OOMKilled``; ``exited`` when the code is not known."""
        return _exit_words(self.exit)


def _exit_words(found: tuple[int | None, str] | None) -> str:
    if found is None or found[0] is None:
        return "exited"
    return f"exit {found[0]}" + (f" {found[1]}" if found[1] else "")


ExitOf = Callable[[Event], "tuple[int | None, str] | None"]


def events(store: ctrledger.Store, cid: str, *, namespace: str = "default") -> Iterator[Event]:
    """The events of the name ``cid`` in ``namespace``, oldest first, for the timeline and the table.

    Read from ``Store.audit`` (the read model's rows, by the container's own positions: no event
    of the log is decoded, so 5,000 events cost what a few hundred records do), with the
    incarnations counted from the ``Created`` events; without ``changes`` or exit codes (see
    :func:`exits`). ``NotFound`` (at once, not when first read) if the name never existed there.
    """
    store.history(cid, namespace=namespace)  # NotFound now; the history itself is never read
    records = store.audit(namespace=namespace, id=cid)

    def counted() -> Iterator[Event]:
        incarnation = 0
        for r in records:
            if r.kind == "Created":
                incarnation += 1
            yield Event(r.position, r.version, max(incarnation, 1), r.kind, r.recorded_at, r.actor, r.reason,
                        r.correlation_id, tuple(r.fieldpaths), client=r.client)

    return counted()


def exits(store: ctrledger.Store, cid: str, *, namespace: str = "default") -> ExitOf:
    """An ``Exited`` event's (exit code, reason): the container's status right after it
    (``Store.get`` as of its position; one indexed read per exit asked for)."""

    def exit_of(e: Event) -> tuple[int | None, str] | None:
        if e.exit is not None:
            return e.exit
        try:
            status = store.get(cid, namespace=namespace, as_of=ctrledger.Position(e.position)).status
        except ctrledger.NotFound:
            return None
        return (status.exit_code, status.reason or "")

    return exit_of


@dataclass
class _Span:
    start: float  # a coordinate on the axis (seconds or index), mapped to x when drawing
    end: float | None = None
    label: str = ""
    css: str = ""
    exited: Event | None = None  # the Exited event that ended a run


@dataclass
class _Mark:
    """One event on its lane, or (``count`` > 1) several drawn as one. Its tooltip and link are
    made when it is drawn, from ``entry`` (and ``last``): a few hundred, not one per event."""

    at: float
    lane: int
    css: str
    entry: Event
    count: int = 1
    last: Event | None = None


def _when(t: datetime) -> str:
    return t.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def _title(e: Event) -> str:
    lines = [f"v{e.version} {e.kind} (#{e.incarnation}) @{e.position}", _when(e.recorded_at), f"actor: {e.actor}"]
    if e.reason:
        lines.append(f"reason: {e.reason}")
    if e.correlation_id:
        lines.append(f"correlation id: {e.correlation_id}")
    return "\n".join(lines)


@dataclass
class Timeline:
    """What the SVG shows, gathered from one pass over the history."""

    axis: Axis = "time"
    events: int = 0
    first: datetime | None = None
    last: datetime | None = None
    incarnations: list[_Span] = field(default_factory=list)
    runs: list[_Span] = field(default_factory=list)
    pauses: list[_Span] = field(default_factory=list)
    marks: list[_Mark] = field(default_factory=list)

    @classmethod
    def of(cls, entries: Iterable[ctrledger.HistoryEntry | Event], *, axis: Axis = "time") -> Timeline:
        tl = cls(axis=axis)
        origin: datetime | None = None
        run: _Span | None = None
        pause: _Span | None = None
        inc: _Span | None = None
        for item in entries:
            e = Event.of_entry(item) if isinstance(item, ctrledger.HistoryEntry) else item
            if origin is None:
                origin = tl.first = e.recorded_at
            tl.last = e.recorded_at
            at = float(tl.events) if axis == "sequence" else (e.recorded_at - origin).total_seconds()
            tl.events += 1
            kind = e.kind
            if kind == "Created":
                inc = _Span(at, label=f"#{e.incarnation}", css="inc")
                tl.incarnations.append(inc)
            elif kind == "Deleted" and inc is not None:
                inc.end = at
                inc = None
            if kind in ("Exited", "Deleted", "Started") and pause is not None:
                pause.end = at
                pause = None
            if kind in ("Exited", "Deleted", "Started") and run is not None:
                run.end = at
                if kind == "Exited":
                    run.exited = e
                    run.label = "exited"
                run = None
            if kind == "Started":
                run = _Span(at, label="running", css="run")
                tl.runs.append(run)
            elif kind == "Paused" and run is not None:
                pause = _Span(at, css="pause")
                tl.pauses.append(pause)
            elif kind == "Resumed" and pause is not None:
                pause.end = at
                pause = None
            lane = _LANES.get(kind, 2)
            tl.marks.append(_Mark(at, lane, f"k-{kind}" if lane < 2 else "k-change", e))
        return tl

    def span(self) -> float:
        if self.axis == "sequence":
            return float(max(self.events - 1, 1))
        if self.first is None or self.last is None:
            return 1.0
        return max((self.last - self.first).total_seconds(), 1.0)

    def extent(self) -> float:
        """The axis: the events' span and a margin after the last, where open bars (a container
        still alive, a run still running) are drawn to."""
        return self.span() * (1 + MARGIN)

    def resolve_exits(self, exit_of: ExitOf | None, limit: int = EXIT_LOOKUPS) -> None:
        """Label the runs with their exit code and reason (red for a non-zero code): those the
        events carry, and up to ``limit`` more (the latest runs) asked of ``exit_of``."""
        asked = 0
        for run in reversed(self.runs):
            e = run.exited
            if e is None:
                continue
            found = e.exit
            if found is None and exit_of is not None and asked < limit:
                asked += 1
                found = exit_of(e)
            if found is None:
                continue
            run.label = _exit_words(found)
            run.css = "run failed" if found[0] not in (0, None) else "run"


def _merged(marks: list[_Mark], scale: float) -> list[_Mark]:
    """Marks of one lane closer than ``BUCKET`` pixels folded into the first of them."""
    out: list[_Mark] = []
    for m in marks:
        if out and (m.at - out[-1].at) * scale < BUCKET:
            head = out[-1]
            head.count += 1
            head.css = "k-many"
            head.last = m.entry
        else:
            out.append(_Mark(m.at, m.lane, m.css, m.entry))
    return out


def _ticks(tl: Timeline, x: Callable[[float], float]) -> list[str]:
    """Grid lines and their labels: the time of day when the axis stays within one day (the
    day written once, at the left), else month, day and time."""
    out = []
    n = 4
    same_day = tl.first is not None and tl.last is not None and tl.first.date() == tl.last.date()
    if tl.axis == "time" and tl.first is not None:
        day = tl.first.astimezone(UTC).date().isoformat() if same_day else "UTC"
        out.append(f'<text class="lane-name" x="4" y="{TOP - 10}">{escape(day)}</text>')
    for i in range(n + 1):
        at = tl.extent() * i / n
        if tl.axis == "sequence":
            text = f"event {min(int(round(at)) + 1, max(tl.events, 1))}"
        else:
            assert tl.first is not None
            moment = datetime.fromtimestamp(tl.first.timestamp() + at, UTC)
            text = moment.strftime("%H:%M:%S" if same_day else "%m-%d %H:%M")
        px = x(at)
        anchor = "start" if i == 0 else ("end" if i == n else "middle")
        out.append(f'<line class="tick" x1="{px:.1f}" y1="{TOP - 6}" x2="{px:.1f}" y2="{TOP + 3 * LANE}"/>')
        out.append(f'<text x="{px:.1f}" y="{TOP - 10}" text-anchor="{anchor}">{escape(text)}</text>')
    return out


def render_svg(
    entries: Iterable[ctrledger.HistoryEntry | Event], *, title: str, axis: Axis = "time",
    href: Callable[[Event], str] | None = None, width: int = WIDTH, exit_of: ExitOf | None = None,
) -> str:
    """The timeline of ``entries`` (one container's history, oldest first: ``Store.history``
    records, or the lighter :func:`events`) as an SVG document.

    ``href(event)``: the link of each mark (none without it); ``title``: the picture's title;
    ``exit_of``: where to read the exit code of runs whose events do not carry it (:func:`exits`).
    """
    tl = Timeline.of(entries, axis=axis)
    tl.resolve_exits(exit_of)
    inner = width - LEFT - RIGHT
    scale = inner / tl.extent()

    def x(at: float) -> float:
        return LEFT + at * scale

    height = TOP + 3 * LANE + 8
    end = tl.extent()
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="tl" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f"<style>{_STYLE}</style>",
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff3c4"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#8a6d00" stroke-width="2"/></pattern></defs>',
    ]
    for i, name in enumerate(("incarnations", "runs", "changes")):
        parts.append(f'<text class="lane-name" x="4" y="{TOP + i * LANE + LANE / 2 + 4:.1f}">{name}</text>')
    parts += _ticks(tl, x)
    if tl.events == 0:
        parts.append(f'<text x="{LEFT}" y="{TOP + LANE}">no events</text>')

    def bar(s: _Span, lane: int, extra: str = "") -> None:
        x0, x1 = x(s.start), x(s.end if s.end is not None else end)
        w = max(x1 - x0, 2.0)
        y = TOP + lane * LANE + (LANE - BAR) / 2
        css = s.css + (" open" if s.end is None else "") + extra
        parts.append(f'<rect class="{css}" x="{x0:.1f}" y="{y:.1f}" width="{w:.1f}" height="{BAR}" rx="3"/>')
        if s.label and w > 7 * len(s.label):
            parts.append(f'<text x="{x0 + 4:.1f}" y="{y + BAR - 4:.1f}">{escape(s.label)}</text>')

    for s in tl.incarnations:
        bar(s, 0)
    for s in tl.runs:
        bar(s, 1)
    for s in tl.pauses:
        bar(s, 1)
    for lane in range(3):
        for m in _merged([m for m in tl.marks if m.lane == lane], scale):
            cx, cy = x(m.at), TOP + lane * LANE + LANE / 2
            text = _title(m.entry) if m.last is None else (
                f"{m.count} events, from\n{_title(m.entry)}\n… to\n{_title(m.last)}")
            shape = (f'<circle class="mark {m.css}" cx="{cx:.1f}" cy="{cy:.1f}" r="{6 if m.count > 1 else 5}">'
                     f"<title>{escape(text)}</title></circle>")
            if href is not None:
                shape = f'<a href="{escape(href(m.entry))}">{shape}</a>'
            parts.append(shape)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
