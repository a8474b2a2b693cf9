"""One Go ``%q`` for the whole project: identifiers, paths and filter text are quoted as
containerd 1.6.20 (Go 1.19, Unicode 13.0 tables) prints them."""

from __future__ import annotations

import pytest

import ctrledger
from ctrledger.domain import filters, validation
from ctrledger.domain.gostrings import go_quote, is_print, quote_runes

# (name, input, what Go's strconv.Quote prints)
CASES = [
    ("plain", "web-1", '"web-1"'),
    ("empty", "", '""'),
    ("space kept", "a b", '"a b"'),
    ("quote and backslash", 'a"b\\c', '"a\\"b\\\\c"'),
    ("named escapes", "\a\b\f\n\r\t\v", '"\\a\\b\\f\\n\\r\\t\\v"'),
    ("nul", "\x00", '"\\x00"'),
    ("del", "\x7f", '"\\x7f"'),
    ("C1 control", "\x85", '"\\u0085"'),
    ("no-break space (Zs)", "a\u00a0b", '"a\\u00a0b"'),
    ("soft hyphen (Cf)", "a\u00adb", '"a\\u00adb"'),
    ("line separator (Zl)", "\u2028", '"\\u2028"'),
    ("letters kept", "café-日本", '"café-日本"'),
    ("mark kept", "e\u0301", '"e\u0301"'),
    ("emoji kept", "\U0001f600", '"\U0001f600"'),
    # Assigned in Unicode 14.0: Python 3.11 calls it printable, Go 1.19 does not know it.
    ("U+0870 (Unicode 14)", "a\u0870b", '"a\\u0870b"'),
    ("U+1F979 (Unicode 14, astral)", "\U0001f979", '"\\U0001f979"'),
    ("unassigned BMP", "\u0378", '"\\u0378"'),
    ("private use", "\ue000", '"\\ue000"'),
    ("unassigned astral", "\U000e0080", '"\\U000e0080"'),
    ("invalid byte (surrogate escape)", "a\udc80b", '"a\\x80b"'),
]


@pytest.mark.parametrize(("text", "quoted"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_go_quote(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


def test_the_ascii_fast_path_quotes_as_the_rune_loop() -> None:
    """Printable ASCII without a quote or backslash is returned quoted at once: the same text,
    for every ASCII character alone, between letters, and for ASCII strings of any mix."""
    import random

    chars = [chr(i) for i in range(128)]
    texts = [*chars, *(f"a{c}b" for c in chars), "web-1", "", "a b", "ns/x.y_z:1"]
    rng = random.Random(7)
    texts += ["".join(rng.choice(chars) for _ in range(rng.randrange(1, 12))) for _ in range(2000)]
    for text in texts:
        assert go_quote(text) == quote_runes(text), text


def test_there_is_one_implementation() -> None:
    assert validation.go_quote is go_quote
    assert filters._go_quote is go_quote


def test_python_isprintable_is_not_gos_isprint() -> None:
    # The bug this module fixed: the two predicates disagree on Unicode 14.0's additions.
    assert "\u0870".isprintable() and not is_print(0x870)


def test_store_errors_quote_as_containerd(store: ctrledger.Store) -> None:
    with pytest.raises(ctrledger.NotFound) as e:
        store.get("a\u0870b")
    assert 'container "a\\u0870b" in namespace "default": not found' in str(e.value)
