"""Go's view of strings, as containerd prints them: UTF-8 with Go's semantics and ``%q``.

One implementation for the whole project: error messages quote identifiers, paths and
filter text exactly as containerd's ``fmt.Sprintf("%q", ...)`` does, i.e. Go's
``strconv.Quote``. A rune is kept as is when Go's ``IsPrint`` holds for it (general
categories L, M, N, P, S of *Go's* Unicode tables, plus U+0020); otherwise it is escaped
(``\\a``..``\\v``, ``\\xNN`` below U+0080 and for invalid bytes, ``\\uNNNN``, ``\\UNNNNNNNN``).
Python's ``str.isprintable`` is not the same predicate (it uses Python's newer tables and
treats some categories differently), so it is not used here.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_right
from typing import Final

__all__ = ["MAX_RUNE", "RUNE_ERROR", "decode_rune", "go_quote", "go_rune_string", "go_text", "is_print", "to_bytes"]


RUNE_ERROR: Final = 0xFFFD
MAX_RUNE: Final = 0x10FFFF


def to_bytes(text: str) -> bytes:
    """The bytes Go would hold for ``text``.

    Surrogate escapes (U+DC80..U+DCFF, from ``os.fsdecode`` and friends) become the raw bytes
    they stand for; any other lone surrogate is encoded as its (invalid) 3-byte sequence.
    """
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        out = bytearray()
        for ch in text:
            if 0xDC80 <= ord(ch) <= 0xDCFF:
                out.append(ord(ch) - 0xDC00)
            else:
                out += ch.encode("utf-8", "surrogatepass")
        return bytes(out)


def decode_rune(data: bytes, i: int) -> tuple[int, int]:
    """Go's ``utf8.DecodeRuneInString(data[i:])``: ``(rune, width)``; ``(RuneError, 1)`` if invalid."""
    if i >= len(data):
        return RUNE_ERROR, 0
    b0 = data[i]
    if b0 < 0x80:
        return b0, 1
    if 0xC2 <= b0 <= 0xDF:
        n = 2
    elif 0xE0 <= b0 <= 0xEF:
        n = 3
    elif 0xF0 <= b0 <= 0xF4:
        n = 4
    else:
        return RUNE_ERROR, 1
    try:
        decoded = data[i : i + n].decode("utf-8")
    except UnicodeDecodeError:
        return RUNE_ERROR, 1
    return ord(decoded), n


def go_text(data: bytes) -> str:
    """Bytes as a client shows them: valid UTF-8 decoded, each invalid byte as U+FFFD."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    out: list[str] = []
    i = 0
    while i < len(data):
        r, w = decode_rune(data, i)
        out.append(chr(r))
        i += w
    return "".join(out)


def go_rune_string(r: int) -> str:
    """Go's ``string(rune(r))``: U+FFFD for anything that is not a valid code point."""
    if r < 0 or r > MAX_RUNE or 0xD800 <= r <= 0xDFFF:
        return "\ufffd"
    return chr(r)


# Code points assigned in Unicode 14.0 (Age=14.0, from Perl 5.36's UCD). containerd 1.6.20 is built
# with Go 1.19, whose tables are Unicode 13.0, so to it these are unassigned: not graphic, not
# printable. Python 3.11's unicodedata is 14.0; a newer Python would need the later ages as well.
_ASSIGNED_AFTER_GO_TABLES: Final = (
    (0x061D, 0x061D),
    (0x0870, 0x088E),
    (0x0890, 0x0891),
    (0x0898, 0x089F),
    (0x08B5, 0x08B5),
    (0x08C8, 0x08D2),
    (0x0C3C, 0x0C3C),
    (0x0C5D, 0x0C5D),
    (0x0CDD, 0x0CDD),
    (0x170D, 0x170D),
    (0x1715, 0x1715),
    (0x171F, 0x171F),
    (0x180F, 0x180F),
    (0x1AC1, 0x1ACE),
    (0x1B4C, 0x1B4C),
    (0x1B7D, 0x1B7E),
    (0x1DFA, 0x1DFA),
    (0x20C0, 0x20C0),
    (0x2C2F, 0x2C2F),
    (0x2C5F, 0x2C5F),
    (0x2E53, 0x2E5D),
    (0x9FFD, 0x9FFF),
    (0xA7C0, 0xA7C1),
    (0xA7D0, 0xA7D1),
    (0xA7D3, 0xA7D3),
    (0xA7D5, 0xA7D9),
    (0xA7F2, 0xA7F4),
    (0xFBC2, 0xFBC2),
    (0xFD40, 0xFD4F),
    (0xFDCF, 0xFDCF),
    (0xFDFE, 0xFDFF),
    (0x10570, 0x1057A),
    (0x1057C, 0x1058A),
    (0x1058C, 0x10592),
    (0x10594, 0x10595),
    (0x10597, 0x105A1),
    (0x105A3, 0x105B1),
    (0x105B3, 0x105B9),
    (0x105BB, 0x105BC),
    (0x10780, 0x10785),
    (0x10787, 0x107B0),
    (0x107B2, 0x107BA),
    (0x10F70, 0x10F89),
    (0x11070, 0x11075),
    (0x110C2, 0x110C2),
    (0x116B9, 0x116B9),
    (0x11740, 0x11746),
    (0x11AB0, 0x11ABF),
    (0x12F90, 0x12FF2),
    (0x16A70, 0x16ABE),
    (0x16AC0, 0x16AC9),
    (0x1AFF0, 0x1AFF3),
    (0x1AFF5, 0x1AFFB),
    (0x1AFFD, 0x1AFFE),
    (0x1B11F, 0x1B122),
    (0x1CF00, 0x1CF2D),
    (0x1CF30, 0x1CF46),
    (0x1CF50, 0x1CFC3),
    (0x1D1E9, 0x1D1EA),
    (0x1DF00, 0x1DF1E),
    (0x1E290, 0x1E2AE),
    (0x1E7E0, 0x1E7E6),
    (0x1E7E8, 0x1E7EB),
    (0x1E7ED, 0x1E7EE),
    (0x1E7F0, 0x1E7FE),
    (0x1F6DD, 0x1F6DF),
    (0x1F7F0, 0x1F7F0),
    (0x1F979, 0x1F979),
    (0x1F9CC, 0x1F9CC),
    (0x1FA7B, 0x1FA7C),
    (0x1FAA9, 0x1FAAC),
    (0x1FAB7, 0x1FABA),
    (0x1FAC3, 0x1FAC5),
    (0x1FAD7, 0x1FAD9),
    (0x1FAE0, 0x1FAE7),
    (0x1FAF0, 0x1FAF6),
    (0x2A6DE, 0x2A6DF),
    (0x2B735, 0x2B738),
)
_AFTER_STARTS: Final = tuple(start for start, _ in _ASSIGNED_AFTER_GO_TABLES)


def is_print(r: int) -> bool:
    """Go 1.19's ``unicode.IsGraphic`` minus the Zs spaces (all of which are spaces), which is also
    its ``IsPrint`` for everything but U+0020: general categories L, M, N, P, S of Unicode 13.0."""
    if unicodedata.category(chr(r))[0] not in "LMNPS":
        return False
    i = bisect_right(_AFTER_STARTS, r) - 1
    return i < 0 or r > _ASSIGNED_AFTER_GO_TABLES[i][1]


_GO_ESCAPES: Final = {
    0x07: "\\a",
    0x08: "\\b",
    0x0C: "\\f",
    0x0A: "\\n",
    0x0D: "\\r",
    0x09: "\\t",
    0x0B: "\\v",
    0x5C: "\\\\",
    0x22: '\\"',
}


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote`` (``%q``), which the filter parser also accepts back."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'  # printable ASCII, nothing to escape: what quote_runes gives, at once
    return quote_runes(text)


def quote_runes(text: str) -> str:
    """``go_quote`` rune by rune (the general case)."""
    data = to_bytes(text)
    out = ['"']
    i = 0
    while i < len(data):
        r, w = decode_rune(data, i)
        if r == RUNE_ERROR and w == 1:
            out.append(f"\\x{data[i]:02x}")
        elif r in _GO_ESCAPES:
            out.append(_GO_ESCAPES[r])
        elif r == 0x20 or is_print(r):
            out.append(chr(r))
        elif r < 0x20 or r == 0x7F:
            out.append(f"\\x{r:02x}")
        elif r < 0x10000:
            out.append(f"\\u{r:04x}")
        else:
            out.append(f"\\U{r:08x}")
        i += w
    out.append('"')
    return "".join(out)
