"""The containerd filter language used by ``List``: a port of containerd 1.6's ``filters`` package.

A filter string is a comma-separated list of selectors, all of which must match (AND). ``List``
takes several filter strings and keeps what matches any of them (OR). No strings at all, or any
string that is exactly ``""``, matches everything.

Grammar (as containerd 1.6.20 implements it; spec section 8.4)::

    filter-string := ""                                  ; matches everything
                   | selector ( "," selector )*
    selector      := fieldpath [ OP value ]              ; no OP: a presence test
    fieldpath     := segment ( "." segment )*
    segment       := FIELD                               ; [A-Za-z0-9_]+
                   | DQUOTED                             ; "..."  (only double quotes in fields)
    OP            := "==" | "!=" | "~="
    value         := UNQUOTED                            ; see the lexical rules below
                   | DQUOTED                             ; after any operator
                   | SLASHQUOTED | PIPEQUOTED            ; /.../ or |...|  only after "~="

Lexical rules (the scanner, spec section 8.3), all on the UTF-8 bytes of the string:

* field runes ``A-Z a-z 0-9 _``; separators ``,`` and ``.``; operator runes ``= ! ~`` (a run of
  them is one operator token, which must then be exactly ``==``, ``!=`` or ``~=``); quote runes
  ``" / |``. A quoted token runs to the next unescaped copy of its opening rune and accepts only
  the escapes ``\\a \\b \\f \\n \\r \\t \\v \\\\``, the quote itself, ``\\NNN``, ``\\xHH``,
  ``\\uHHHH`` and ``\\UHHHHHHHH``.
* whitespace (Go's ``unicode.IsSpace``) is skipped before a token, never after a complete
  selector, so ``"id==x "`` is an error.
* right after an operator, a token that does not start with a quote, separator, operator rune or
  space is an unquoted value running to ``,``, whitespace, the end, or a non-graphic rune.
* NUL and undecodable bytes (and U+FFFD itself, which Go cannot tell from a decoding error) are
  illegal tokens.

Parse errors are :class:`~ctrledger.errors.InvalidArgument` with containerd's exact text::

    filters: parse error: [<before> >|<at>|< <after>]: <msg>: invalid argument: invalid argument
    filters: parse error: [<whole input>]: <msg>: invalid argument: invalid argument   (at the end)

where ``<at>`` is the single *byte* at the error position (a multi-byte rune cut in half shows as
U+FFFD). Matching follows containerd's selector semantics and container adaptor (section 8.1,
8.2): ``!=`` and ``~=`` see an absent field as ``""``; ``~=`` is an unanchored RE2 search.
Beside containerd's fields, the status fields ``status.state``, ``status.reason``,
``status.exit_code``, ``status.pid`` and ``status.paused`` are read from a container's status
(:func:`status_values`); containerd has no such fields and reads them as absent.

Deliberate differences from containerd 1.6 (project decisions):

* D3: no printf mangling of ``%`` in messages (containerd 1.6 renders ``a%d`` as
  ``a%!d(MISSING)``).
* D4: a ``~=`` pattern that does not compile is an ``InvalidArgument`` at parse time
  (containerd logs it and the selector silently matches nothing). RE2 is used through the
  ``re2`` module; constructs that RE2 accepts but Go 1.19's ``regexp`` (the build of 1.6.20)
  rejects, ``\\C`` and ``(?<name>...)``, are rejected as well, and so is a pattern that is not
  valid UTF-8.

This module belongs to the domain layer: it imports only the standard library, ``re2`` and
:mod:`ctrledger.errors`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final, Literal

import re2

from ctrledger.errors import InvalidArgument

from .gostrings import MAX_RUNE as _MAX_RUNE
from .gostrings import RUNE_ERROR as _RUNE_ERROR
from .gostrings import decode_rune as _decode_rune
from .gostrings import go_quote as _go_quote
from .gostrings import go_rune_string as _go_rune_string
from .gostrings import go_text as _go_text
from .gostrings import is_print
from .gostrings import to_bytes as _to_bytes

__all__ = [
    "Conjunction",
    "FieldKind",
    "Filter",
    "OPERATORS",
    "STATUS_FIELDS",
    "Selector",
    "status_values",
    "classify",
    "filter_matcher",
    "match_fields",
    "parse",
    "parse_filters",
]

FieldKind = Literal[
    "id", "image", "runtime.name", "label", "absent",
    "status.state", "status.reason", "status.exit_code", "status.pid", "status.paused",
]

#: The status fields a filter can read (``status.<field>``); any other ``status.*`` is absent.
STATUS_FIELDS: Final = ("state", "reason", "exit_code", "pid", "paused")

#: The operators a selector can carry; ``""`` is the presence test.
OPERATORS: Final = ("", "==", "!=", "~=")

# --------------------------------------------------------------------------------------------
# Scanner (containerd filters/scanner.go).
# --------------------------------------------------------------------------------------------

# Token kinds are negative "runes", as in Go; any other token is the offending rune itself.
_EOF: Final = -1
_QUOTED: Final = -2
_VALUE: Final = -3
_FIELD: Final = -4
_SEPARATOR: Final = -5
_OPERATOR: Final = -6
_ILLEGAL: Final = -7

_GO_SPACES: Final = frozenset(
    [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B)]
    + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
)
_QUOTE_RUNES: Final = frozenset(map(ord, '"/|'))
_SEPARATOR_RUNES: Final = frozenset(map(ord, ",."))
_OPERATOR_RUNES: Final = frozenset(map(ord, "=!~"))
_FIELD_RUNES: Final = frozenset(map(ord, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"))
_SIMPLE_ESCAPES: Final = frozenset(map(ord, "abfnrtv\\"))


def _is_space(r: int) -> bool:
    return r in _GO_SPACES


def _is_value_rune(r: int) -> bool:
    if r < 0 or r == 0x2C or r in _GO_SPACES:
        return False
    if r < 0x80:
        return 0x21 <= r <= 0x7E
    return is_print(r)


def _digit_val(r: int) -> int:
    if 0x30 <= r <= 0x39:
        return r - 0x30
    if 0x61 <= r <= 0x66:
        return r - 0x61 + 10
    if 0x41 <= r <= 0x46:
        return r - 0x41 + 10
    return 16


class _Scanner:
    """Byte-offset scanner; ``pos`` is the start of the current rune, ``ppos`` its end."""

    __slots__ = ("data", "pos", "ppos", "value", "err")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.ppos = 0
        self.value = False
        self.err = ""

    def error(self, msg: str) -> None:
        if not self.err:
            self.err = msg

    def next(self) -> int:
        if self.pos >= len(self.data):
            return _EOF
        self.pos = self.ppos
        r, w = _decode_rune(self.data, self.ppos)
        self.ppos += w
        if r == _RUNE_ERROR:
            if w > 0:
                self.error("rune error")
                return _ILLEGAL
            return _EOF
        if r == 0:
            self.error("unexpected null")
            return _ILLEGAL
        return r

    def peek(self) -> int:
        pos, ppos = self.pos, self.ppos
        ch = self.next()
        self.pos, self.ppos = pos, ppos
        return ch

    def scan(self) -> tuple[int, int, bytes]:
        """``(position, token, text)``; ``token`` is a kind above or the unexpected rune."""
        ch = self.next()
        pos = self.pos
        while ch >= 0:
            if ch in _QUOTE_RUNES:
                if not self._scan_quoted(ch):
                    return pos, _ILLEGAL, self.data[pos : self.ppos]
                return pos, _QUOTED, self.data[pos : self.ppos]
            if ch in _SEPARATOR_RUNES:
                self.value = False
                return pos, _SEPARATOR, self.data[pos : self.ppos]
            if ch in _OPERATOR_RUNES:
                while self.peek() in _OPERATOR_RUNES:
                    self.next()
                self.value = True
                return pos, _OPERATOR, self.data[pos : self.ppos]
            if _is_space(ch):
                ch = self.next()
                pos = self.pos
                continue
            if self.value:
                while _is_value_rune(self.peek()):
                    self.next()
                self.value = False
                return pos, _VALUE, self.data[pos : self.ppos]
            if ch in _FIELD_RUNES:
                while self.peek() in _FIELD_RUNES:
                    self.next()
                return pos, _FIELD, self.data[pos : self.ppos]
            break
        return self.pos, ch, b""

    def _scan_quoted(self, quote: int) -> bool:
        illegal = False
        ch = self.next()
        while ch != quote:
            if ch == 0x0A or ch < 0:
                self.error("quoted literal not terminated")
                return False
            if ch == 0x5C:
                ch, legal = self._scan_escape(quote)
                if not legal:
                    illegal = True
            else:
                ch = self.next()
        return not illegal

    def _scan_escape(self, quote: int) -> tuple[int, bool]:
        ch = self.next()
        if ch in _SIMPLE_ESCAPES or ch == quote:
            return self.next(), True
        if 0x30 <= ch <= 0x37:
            return self._scan_digits(ch, 8, 3)
        if ch == 0x78:  # x
            return self._scan_digits(self.next(), 16, 2)
        if ch == 0x75:  # u
            return self._scan_digits(self.next(), 16, 4)
        if ch == 0x55:  # U
            return self._scan_digits(self.next(), 16, 8)
        self.error("illegal escape sequence")
        return ch, False

    def _scan_digits(self, ch: int, base: int, n: int) -> tuple[int, bool]:
        while n > 0 and _digit_val(ch) < base:
            ch = self.next()
            n -= 1
        if n > 0:
            self.error("illegal numeric escape sequence")
            return ch, False
        return ch, True


# --------------------------------------------------------------------------------------------
# Unquoting (containerd filters/quote.go: strconv.Unquote that also takes / and |).
# --------------------------------------------------------------------------------------------


class _QuoteSyntaxError(Exception):
    pass


def _unhex(b: int) -> int:
    v = _digit_val(b)
    if v >= 16:
        raise _QuoteSyntaxError
    return v


def _encode_rune(r: int) -> bytes:
    if r > _MAX_RUNE or 0xD800 <= r <= 0xDFFF:
        r = _RUNE_ERROR
    return chr(r).encode("utf-8")


def _unquote(token: bytes) -> bytes:
    n = len(token)
    if n < 2 or token[0] != token[-1]:
        raise _QuoteSyntaxError
    quote = token[0]
    s = token[1:-1]
    if quote not in _QUOTE_RUNES and quote != 0x27:
        raise _QuoteSyntaxError
    if 0x0A in s:
        raise _QuoteSyntaxError
    if 0x5C not in s and quote not in s:
        return s
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c == quote:
            raise _QuoteSyntaxError
        if c >= 0x80:
            r, w = _decode_rune(s, i)
            out += _encode_rune(r)
            i += w
            continue
        if c != 0x5C:
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(s):
            raise _QuoteSyntaxError
        c = s[i + 1]
        i += 2
        if c in _SIMPLE_ESCAPES and c != 0x5C:
            out.append(b"\a\b\f\n\r\t\v"["abfnrtv".index(chr(c))])
        elif c in (0x78, 0x75, 0x55):  # x u U
            width = {0x78: 2, 0x75: 4, 0x55: 8}[c]
            if len(s) - i < width:
                raise _QuoteSyntaxError
            v = 0
            for j in range(width):
                v = v << 4 | _unhex(s[i + j])
            i += width
            if c == 0x78:
                out.append(v)  # a single byte, possibly not UTF-8
            else:
                if v > _MAX_RUNE:
                    raise _QuoteSyntaxError
                out += _encode_rune(v)
        elif 0x30 <= c <= 0x37:
            if len(s) - i < 2:
                raise _QuoteSyntaxError
            v = c - 0x30
            for j in range(2):
                x = s[i + j] - 0x30
                if not 0 <= x <= 7:
                    raise _QuoteSyntaxError
                v = v << 3 | x
            i += 2
            if v > 255:
                raise _QuoteSyntaxError
            out.append(v)
        elif c == 0x5C:
            out.append(0x5C)
        elif c in (0x27, 0x22, 0x7C, 0x2F):  # ' " | /
            if c != quote:
                raise _QuoteSyntaxError
            out.append(c)
        else:
            raise _QuoteSyntaxError
    return bytes(out)


def _text(data: bytes) -> str:
    """Parsed bytes as a ``str``; bytes that are not UTF-8 (from ``\\x``/octal escapes) are
    kept as surrogate escapes so that comparisons stay bytewise, as in Go."""
    return data.decode("utf-8", "surrogateescape")


# --------------------------------------------------------------------------------------------
# Regular expressions (RE2, unanchored search; D4: errors at parse time).
# --------------------------------------------------------------------------------------------

_RE2_OPTIONS: Any = re2.Options()
_RE2_OPTIONS.log_errors = False


def _go_only_rejections(pattern: str) -> str | None:
    """Syntax RE2 accepts but Go 1.19's regexp rejects: ``\\C`` and ``(?<name>``."""
    i, n = 0, len(pattern)
    in_class = False
    class_start = 0
    while i < n:
        c = pattern[i]
        if c == "\\":
            if pattern.startswith("\\Q", i):
                end = pattern.find("\\E", i + 2)
                i = n if end < 0 else end + 2
                continue
            if pattern.startswith("\\C", i):
                return "invalid escape sequence: \\C"
            i += 2
            continue
        if in_class:
            if c == "[" and pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                if end >= 0:
                    i = end + 2
                    continue
            if c == "]" and i > class_start:
                in_class = False
            i += 1
            continue
        if c == "[":
            in_class = True
            class_start = i + 1
            if pattern.startswith("^", class_start):
                class_start += 1
            i += 1
            continue
        if pattern.startswith("(?<", i) and not pattern.startswith(("(?<=", "(?<!"), i):
            return "invalid or unsupported Perl syntax: (?<"
        i += 1
    return None


def _compile_regex(pattern: str, selector_text: str) -> Any:
    def fail(reason: str) -> InvalidArgument:
        return InvalidArgument(
            f"filters: invalid regular expression {_go_quote(pattern)} "
            f"in selector {_go_quote(selector_text)}: {reason}"
        )

    try:
        pattern.encode("utf-8")
    except UnicodeEncodeError:
        raise fail("invalid UTF-8") from None
    try:
        compiled = re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else str(exc)
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise fail(str(reason)) from None
    go_reason = _go_only_rejections(pattern)
    if go_reason is not None:
        raise fail(go_reason)
    return compiled


# --------------------------------------------------------------------------------------------
# The AST and matching.
# --------------------------------------------------------------------------------------------


def classify(fieldpath: tuple[str, ...]) -> tuple[FieldKind, str | None]:
    """What the containers adaptor (metadata/adaptors.go, spec 8.2) reads for ``fieldpath``.

    Returns ``(kind, label_key)``; ``label_key`` is set only for ``"label"``. Further segments
    after ``id``, ``image``, ``runtime.name`` and ``status.<field>`` are ignored; ``labels.<k1>.<k2>``
    is the label ``"<k1>.<k2>"``; ``status.<field>`` is one of :data:`STATUS_FIELDS` (ctrledger's
    status lifecycle, see :func:`status_values`); ``labels`` or ``status`` alone, any other
    ``status.*`` and every other path read as absent.
    """
    if not fieldpath:
        return "absent", None
    head = fieldpath[0]
    if head == "id":
        return "id", None
    if head == "image":
        return "image", None
    if head == "runtime":
        if len(fieldpath) >= 2 and fieldpath[1] == "name":
            return "runtime.name", None
        return "absent", None
    if head == "labels" and len(fieldpath) >= 2:
        return "label", ".".join(fieldpath[1:])
    if head == "status" and len(fieldpath) >= 2 and fieldpath[1] in STATUS_FIELDS:
        return _STATUS_KINDS[fieldpath[1]], None
    return "absent", None


_STATUS_KINDS: Final[dict[str, FieldKind]] = {
    "state": "status.state", "reason": "status.reason", "exit_code": "status.exit_code",
    "pid": "status.pid", "paused": "status.paused",
}


def _is_plain_field(segment: str) -> bool:
    return bool(segment) and all(ord(ch) in _FIELD_RUNES for ch in segment)


def _is_plain_value(value: str) -> bool:
    if not value:
        return False
    first = ord(value[0])
    if first in _QUOTE_RUNES or first in _SEPARATOR_RUNES or first in _OPERATOR_RUNES:
        return False
    return all(_is_value_rune(ord(ch)) and ch != "\ufffd" and not 0xD800 <= ord(ch) <= 0xDFFF for ch in value)


def _render_quoted(text: str) -> str:
    # U+FFFD must be escaped: the scanner cannot tell it from a decoding error.
    return _go_quote(text).replace("\ufffd", "\\ufffd")


@dataclass(frozen=True)
class Selector:
    """One ``fieldpath[OP value]`` term.

    ``kind`` and ``label_key`` must be what :func:`classify` says for ``fieldpath``. For ``~=`` the
    compiled pattern is built once (at parse time, or on construction) and is available as
    :attr:`regex` and through :meth:`search`.
    """

    fieldpath: tuple[str, ...]
    operator: str
    value: str
    kind: FieldKind
    label_key: str | None
    _regex: Any = field(default=None, compare=False, repr=False, kw_only=True)

    def __post_init__(self) -> None:
        if self.operator not in OPERATORS:
            raise ValueError(f"unknown filter operator {self.operator!r}")
        if self.operator == "" and self.value != "":
            raise ValueError("a presence selector has no value")
        if (self.kind, self.label_key) != classify(self.fieldpath):
            raise ValueError(
                f"kind/label_key {(self.kind, self.label_key)!r} do not match fieldpath {self.fieldpath!r}"
            )
        if self.operator != "~=":
            object.__setattr__(self, "_regex", None)
        elif self._regex is None:
            object.__setattr__(self, "_regex", _compile_regex(self.value, self.render()))

    @property
    def regex(self) -> Any:
        """The compiled RE2 pattern (``re2._Regexp``) of a ``~=`` selector, else ``None``."""
        return self._regex

    def search(self, text: str) -> bool:
        """Unanchored RE2 search of the ``~=`` pattern in ``text`` (Go's ``MatchString``)."""
        if self._regex is None:
            raise ValueError(f"selector {self.render()!r} is not a ~= selector")
        try:
            return self._regex.search(text) is not None
        except UnicodeEncodeError:
            # Go matches invalid UTF-8 bytes as U+FFFD, one per byte.
            return self._regex.search(_go_text(_to_bytes(text))) is not None

    def matches(self, value: str, present: bool) -> bool:
        """containerd's selector semantics; an absent field is passed as ``("", False)``."""
        op = self.operator
        if op == "":
            return present
        if op == "==":
            return present and value == self.value
        if op == "!=":
            return value != self.value
        return self.search(value)

    def render(self) -> str:
        """A filter-string form of this selector that :func:`parse` reads back to an equal one."""
        path = ".".join(seg if _is_plain_field(seg) else _render_quoted(seg) for seg in self.fieldpath)
        if self.operator == "":
            return path
        value = self.value if _is_plain_value(self.value) else _render_quoted(self.value)
        return f"{path}{self.operator}{value}"


Lookup = Callable[[Selector], tuple[str, bool]]


@dataclass(frozen=True)
class Conjunction:
    """One filter string: every selector must match; no selectors (``""``) matches everything."""

    selectors: tuple[Selector, ...]

    def matches(self, lookup: Lookup) -> bool:
        return all(sel.matches(*lookup(sel)) for sel in self.selectors)

    def render(self) -> str:
        return ",".join(sel.render() for sel in self.selectors)


@dataclass(frozen=True)
class Filter:
    """The OR of several filter strings."""

    any_of: tuple[Conjunction, ...]

    @property
    def matches_everything(self) -> bool:
        """No strings at all, or any string that was exactly ``""``."""
        return not self.any_of or any(not c.selectors for c in self.any_of)

    def matches(self, lookup: Lookup) -> bool:
        if self.matches_everything:
            return True
        return any(c.matches(lookup) for c in self.any_of)


def status_values(status: Any) -> dict[str, tuple[str, bool]]:
    """What a filter reads from a ``Status``, by field kind: ``(value, present)``.

    ==================  =========================================  ==========================
    field               value                                      present when
    ==================  =========================================  ==========================
    ``status.state``    ``CREATED``, ``RUNNING``, ``EXITED``,      always
                        ``UNKNOWN``
    ``status.reason``   the reason (``Completed``, ``OOMKilled``)  not empty
    ``status.exit_code````137`` (decimal, ``-1`` for negatives)    the state is EXITED
    ``status.pid``      ``4242`` (decimal)                         not 0
    ``status.paused``   ``true`` or ``false``                      always
    ==================  =========================================  ==========================

    As for every field, ``!=`` and ``~=`` see an absent value as ``""``.
    """
    exited = status.finished_at is not None
    return {
        "status.state": (status.state, True),
        "status.reason": (status.reason, status.reason != ""),
        "status.exit_code": (str(status.exit_code) if exited else "", exited),
        "status.pid": (str(status.pid) if status.pid else "", status.pid != 0),
        "status.paused": ("true" if status.paused else "false", True),
    }


_NO_STATUS: Final = {kind: ("", False) for kind in _STATUS_KINDS.values()}


def match_fields(
    f: Filter, *, id: str, image: str, runtime_name: str, labels: Mapping[str, str], status: Any = None,
) -> bool:
    """Whether a container with these fields passes ``f`` (containerd's container adaptor,
    and the status fields of :func:`status_values`; ``status=None``: every status field absent)."""
    statuses = _NO_STATUS if status is None else status_values(status)

    def lookup(sel: Selector) -> tuple[str, bool]:
        kind = sel.kind
        if kind in statuses:
            return statuses[kind]
        if kind == "id":
            return id, id != ""
        if kind == "image":
            return image, image != ""
        if kind == "runtime.name":
            return runtime_name, runtime_name != ""
        if kind == "label" and labels:
            key = sel.label_key if sel.label_key is not None else ""
            if key in labels:
                return labels[key], True
        return "", False

    return f.matches(lookup)


# --------------------------------------------------------------------------------------------
# Parser (containerd filters/parser.go).
# --------------------------------------------------------------------------------------------


@dataclass
class _RawSelector:
    fieldpath: tuple[str, ...]
    operator: str
    value: str
    start: int
    end: int


class _Parser:
    def __init__(self, text: str) -> None:
        self.data = _to_bytes(text)
        self.scanner = _Scanner(self.data)

    def error(self, pos: int, msg: str) -> InvalidArgument:
        data = self.data
        if pos < len(data):
            detail = b"[" + data[:pos] + b" >|" + data[pos : pos + 1] + b"|< " + data[pos + 1 :] + b"]"
        else:
            detail = b"[" + data + b"]"
        return InvalidArgument(
            f"filters: parse error: {_go_text(detail)}: {msg}: invalid argument: invalid argument"
        )

    def selectors(self) -> list[_RawSelector]:
        out = [self.selector()]
        sc = self.scanner
        while True:
            tok = sc.peek()
            if tok == 0x2C:  # ,
                pos, kind, _ = sc.scan()
                if kind != _SEPARATOR:  # pragma: no cover - unreachable, as in containerd
                    raise self.error(pos, "expected a separator")
                out.append(self.selector())
            elif tok == _EOF:
                return out
            else:
                raise self.error(sc.ppos, f"unexpected input: {_go_rune_string(tok)}")

    def selector(self) -> _RawSelector:
        start, fieldpath = self.fieldpath()
        if self.scanner.peek() in (0x2C, _SEPARATOR, _EOF):
            return _RawSelector(fieldpath, "", "", start, self.scanner.ppos)
        op = self.operator()
        value = self.value(allow_alt_quotes=op == "~=")
        return _RawSelector(fieldpath, op, value, start, self.scanner.ppos)

    def fieldpath(self) -> tuple[int, tuple[str, ...]]:
        start, first = self.field()
        segments = [first]
        sc = self.scanner
        while sc.peek() == 0x2E:  # .
            pos, kind, _ = sc.scan()
            if kind != _SEPARATOR:  # pragma: no cover - unreachable, as in containerd
                raise self.error(pos, "expected a field separator (`.`)")
            segments.append(self.field()[1])
        return start, tuple(segments)

    def field(self) -> tuple[int, str]:
        pos, kind, text = self.scanner.scan()
        if kind == _FIELD:
            return pos, _text(text)
        if kind == _QUOTED:
            return pos, self.unquote(pos, text, allow_alts=False)
        if kind == _ILLEGAL:
            raise self.error(pos, self.scanner.err)
        raise self.error(pos, "expected field or quoted")

    def operator(self) -> str:
        pos, kind, text = self.scanner.scan()
        if kind == _OPERATOR:
            op = text.decode("ascii")
            if op in ("==", "!=", "~="):
                return op
            raise self.error(pos, f"unsupported operator {_go_quote(op)}")
        if kind == _ILLEGAL:
            raise self.error(pos, self.scanner.err)
        raise self.error(pos, 'expected an operator ("=="|"!="|"~=")')

    def value(self, *, allow_alt_quotes: bool) -> str:
        pos, kind, text = self.scanner.scan()
        if kind in (_VALUE, _FIELD):
            return _text(text)
        if kind == _QUOTED:
            return self.unquote(pos, text, allow_alts=allow_alt_quotes)
        if kind == _ILLEGAL:
            raise self.error(pos, self.scanner.err)
        raise self.error(pos, "expected value or quoted")

    def unquote(self, pos: int, token: bytes, *, allow_alts: bool) -> str:
        if not allow_alts and token[0] not in (0x27, 0x22):
            raise self.error(pos, "invalid quote encountered")
        try:
            return _text(_unquote(token))
        except _QuoteSyntaxError:
            raise self.error(pos, "unquoting failed: quote syntax error") from None


@lru_cache(maxsize=512)
def _parse(filter_string: str) -> Conjunction:
    if filter_string == "":
        return Conjunction(())
    parser = _Parser(filter_string)
    raw = parser.selectors()
    selectors: list[Selector] = []
    for r in raw:
        kind, label_key = classify(r.fieldpath)
        regex = None
        if r.operator == "~=":
            regex = _compile_regex(r.value, _go_text(parser.data[r.start : r.end]))
        selectors.append(Selector(r.fieldpath, r.operator, r.value, kind, label_key, _regex=regex))
    return Conjunction(tuple(selectors))


MAX_SELECTORS = 256
"""The most selectors a request's filters may hold in total (an SQL expression has a depth limit)."""


def parse(filter_string: str) -> Conjunction:
    """Parse one filter string; raises :class:`InvalidArgument` with containerd's message."""
    if not isinstance(filter_string, str):
        raise InvalidArgument(f"a filter must be a string, not {type(filter_string).__name__}: invalid argument")
    return _parse(filter_string)


def parse_filters(filter_strings: Sequence[str]) -> Filter:
    """Parse the ``filters`` of a ``List`` request; the error is that of the first bad string.

    At most ``MAX_SELECTORS`` selectors in all (and as many filters): more is ``InvalidArgument``.
    """
    if isinstance(filter_strings, str):
        raise InvalidArgument("filters must be a sequence of filter strings, not one string: invalid argument")
    try:
        strings = list(filter_strings)
    except TypeError:
        raise InvalidArgument(f"filters must be a sequence of filter strings, not "
                              f"{type(filter_strings).__name__}: invalid argument") from None
    if len(strings) > MAX_SELECTORS:
        raise InvalidArgument(f"too many filters: {len(strings)} (at most {MAX_SELECTORS}): invalid argument")
    parsed = Filter(tuple(parse(s) for s in strings))
    total = sum(len(c.selectors) for c in parsed.any_of)
    if total > MAX_SELECTORS:
        raise InvalidArgument(f"too many selectors: {total} in all the filters (at most {MAX_SELECTORS}): "
                              "invalid argument")
    return parsed


def filter_matcher(*filter_strings: str) -> Callable[[Callable[[tuple[str, ...]], str | None]], bool]:
    """containerd's filter language over any record, not only containers.

    Parses ``filter_strings`` now (``InvalidArgument`` as for ``list``) and returns a test that
    takes a lookup from a field path (``("topic",)``, ``("event", "labels", "a.b")``) to the
    field's value, ``None`` when absent, and says whether the record passes (the strings OR'ed,
    the selectors of one string AND'ed; containerd's ``==``, ``!=``, ``~=`` and presence).
    ``ctrledger serve`` filters containerd's event envelopes with it.
    """
    flt = parse_filters(list(filter_strings))

    def test(field: Callable[[tuple[str, ...]], str | None]) -> bool:
        def lookup(sel: Selector) -> tuple[str, bool]:
            value = field(sel.fieldpath)
            return ("", False) if value is None else (value, True)

        return flt.matches(lookup)

    return test
