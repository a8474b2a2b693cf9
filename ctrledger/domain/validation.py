"""containerd's validation rules and error texts for IDs, namespaces and records.

The texts follow containerd 1.6 (``identifiers/validate.go``, ``labels/validate.go``,
``metadata/containers.go``), less the printf mangling of ``%`` (deliberate
difference D3). Each check raises ``InvalidArgument`` or ``FailedPrecondition``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..errors import FailedPrecondition, InvalidArgument
from .gostrings import go_quote
from .model import Container, Payload, Runtime

__all__ = [
    "IDENTIFIER_PATTERN",
    "LABEL_MAX_SIZE",
    "MAX_IDENTIFIER_LENGTH",
    "check_identifier",
    "check_record",
    "check_text",
    "empty_label_key_problem",
    "text_list",
    "text_or_none",
    "go_quote",
    "record_problem",
    "validate_namespace",
]

MAX_IDENTIFIER_LENGTH = 76
LABEL_MAX_SIZE = 4096
IDENTIFIER_PATTERN = r"^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$"
_identifier_re = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*\Z", re.ASCII)


def check_text(value: object, name: str) -> None:
    """``InvalidArgument`` naming ``name`` if ``value`` is text that cannot be stored (a lone
    surrogate: not UTF-8); values of other types are left to their own checks."""
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InvalidArgument(
                f"{name}: {go_quote(value[max(0, e.start - 10):e.end + 10])} is not valid Unicode text "
                f"(a lone surrogate at character {e.start}): invalid argument"
            ) from None


def text_or_none(value: object, name: str) -> str | None:
    """``value`` if it is None or storable text, else ``InvalidArgument`` naming ``name``."""
    if value is not None and not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a string, not {type(value).__name__}: invalid argument")
    check_text(value, name)
    return value


def text_list(value: object, name: str, *, limit: int = 256) -> list[str] | None:
    """One string or a sequence of strings, as a list (None stays None); ``InvalidArgument``
    naming ``name`` for anything else. A lone string is one item, never split into letters."""
    if value is None:
        return None
    if isinstance(value, str):
        items: list[object] = [value]
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    else:
        raise InvalidArgument(f"{name} must be a string or a list of strings, not {type(value).__name__}: "
                              "invalid argument")
    if len(items) > limit:
        raise InvalidArgument(f"{name}: too many values ({len(items)}; at most {limit}): invalid argument")
    return [text_or_none(item, name) or "" if isinstance(item, str) else _not_text(item, name) for item in items]


def _not_text(item: object, name: str) -> str:
    raise InvalidArgument(f"{name} must hold strings, not {type(item).__name__}: invalid argument")


def _record_text_problem(c: Container) -> str | None:
    # Every record of every write is checked: when all its texts are strings and ASCII (nearly
    # always), none can be a problem, and one join and one ``isascii`` tell it. Otherwise (a
    # non-ASCII text, or a value that is not a string) each text is checked by name.
    labels = c.labels if isinstance(c.labels, Mapping) else {}
    extensions = c.extensions if isinstance(c.extensions, Mapping) else {}
    try:
        joined = "".join((
            c.id, c.image, c.snapshotter, c.snapshot_key, c.sandbox, getattr(c.runtime, "name", ""), *labels,
            *labels.values(), *extensions, *(getattr(v, "type_url", "") for v in extensions.values()),
            getattr(c.spec, "type_url", ""), getattr(getattr(c.runtime, "options", None), "type_url", "")))
    except TypeError:
        pass
    else:
        if joined.isascii():
            return None
    named: list[tuple[str, object]] = [
        ("container.ID", c.id), ("container.Image", c.image), ("container.Snapshotter", c.snapshotter),
        ("container.SnapshotKey", c.snapshot_key), ("container.Sandbox", c.sandbox),
        ("container.Runtime.Name", getattr(c.runtime, "name", "")),
    ]
    if isinstance(c.labels, Mapping):
        named += [("containers.Labels", t) for kv in c.labels.items() for t in kv]
    if isinstance(c.extensions, Mapping):
        named += [("container.Extensions", k) for k in c.extensions]
        named += [("container.Extensions", getattr(v, "type_url", "")) for v in c.extensions.values()]
    for payload, label in ((c.spec, "container.Spec"), (getattr(c.runtime, "options", None), "container.Runtime")):
        named.append((label, getattr(payload, "type_url", "")))
    for name, value in named:
        try:
            check_text(value, name)
        except InvalidArgument as e:
            return e.message.removesuffix(": invalid argument")
    return None


def identifier_problem(s: str) -> str | None:
    """What is wrong with ``s`` as an identifier, in containerd's words, or None."""
    if not s:
        return "identifier must not be empty"
    if len(s.encode("utf-8", "surrogatepass")) > MAX_IDENTIFIER_LENGTH:
        return (
            f"identifier {go_quote(s)} greater than maximum length "
            f"({MAX_IDENTIFIER_LENGTH} characters)"
        )
    if not _identifier_re.match(s):
        return f"identifier {go_quote(s)} must match {IDENTIFIER_PATTERN}"
    return None


def check_identifier(s: str) -> None:
    """Raise ``InvalidArgument`` if ``s`` is not a valid identifier."""
    problem = identifier_problem(s)
    if problem is not None:
        raise InvalidArgument(f"{problem}: invalid argument")


def validate_namespace(namespace: object) -> str:
    """Return the namespace if it is given and valid, else raise.

    ``None`` or ``""`` is ``FailedPrecondition``; a malformed name ``InvalidArgument``.
    """
    if type(namespace) is str and namespace in _valid_namespaces:  # every call checks one: remember
        return namespace
    if namespace is None or namespace == "":
        raise FailedPrecondition("namespace is required: failed precondition")
    if not isinstance(namespace, str):
        raise InvalidArgument(
            f"namespace validation: namespace must be a string, not "
            f"{type(namespace).__name__}: invalid argument"
        )
    problem = identifier_problem(namespace)
    if problem is not None:
        raise InvalidArgument(f"namespace validation: {problem}: invalid argument")
    if type(namespace) is str:
        if len(_valid_namespaces) >= 4096:
            _valid_namespaces.clear()
        _valid_namespaces.add(namespace)
    return namespace


_valid_namespaces: set[str] = set()


def _label_problem(labels: Mapping[str, str]) -> str | None:
    for key, value in labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            return f"containers.Labels: label keys and values must be strings, got {key!r}: {value!r}"
        size = len(key.encode("utf-8", "surrogatepass")) + len(value.encode("utf-8", "surrogatepass"))
        if size > LABEL_MAX_SIZE:
            shown = key.encode("utf-8", "surrogatepass")[:10].decode("utf-8", "replace")
            return (
                f"containers.Labels: label key and value greater than maximum size "
                f"({LABEL_MAX_SIZE} bytes), key: {shown}"
            )
    return None


def empty_label_key_problem(labels: Mapping[str, str]) -> str | None:
    # D2: containerd fails only when writing (UNKNOWN), i.e. after every other check;
    # we raise InvalidArgument at that same point in the order, naming the problem.
    value = labels.get("", "")
    if value != "":
        return f"containers.Labels: label key must not be empty (value {go_quote(value)})"
    return None


def record_problem(c: Container, *, empty_label_key: bool = True) -> str | None:
    """The first problem with a record, in containerd's create order, or None.

    Order: ID, extension keys, labels, runtime name, spec, snapshot key.
    """
    if not isinstance(c.id, str):
        return f"container.ID: must be a string, not {type(c.id).__name__}"
    problem = _record_text_problem(c) or identifier_problem(c.id)
    if problem is not None:
        return f"container.ID: {problem}"
    for key, value in c.extensions.items():
        if not isinstance(key, str):
            return f"container.Extension keys must be strings, not {type(key).__name__}"
        if key == "":
            return "container.Extension keys must not be zero-length"
        if not isinstance(value, Payload):
            return f"container.Extensions[{go_quote(key)}] must be a Payload, not {type(value).__name__}"
    problem = _label_problem(c.labels)
    if problem is not None:
        return problem
    if not isinstance(c.runtime, Runtime):
        return f"container.Runtime must be a Runtime, not {type(c.runtime).__name__}"
    if not c.runtime.name:
        return "container.Runtime.Name must be set"
    if c.spec is None:
        return "container.Spec must be set"
    if c.snapshot_key and not c.snapshotter:
        return "container.Snapshotter must be set if container.SnapshotKey is set"
    for name in ("image", "snapshotter", "snapshot_key", "sandbox"):
        if not isinstance(getattr(c, name), str):
            return f"container.{name} must be a string, not {type(getattr(c, name)).__name__}"
    if not isinstance(c.runtime.name, str) or not (
        c.runtime.options is None or isinstance(c.runtime.options, Payload)
    ):
        return "container.Runtime must hold a string name and a Payload or None as options"
    if not isinstance(c.spec, Payload):
        return f"container.Spec must be a Payload, not {type(c.spec).__name__}"
    return empty_label_key_problem(c.labels) if empty_label_key else None


def check_record(c: Container, context: str, *, empty_label_key: bool = True) -> None:
    """Raise ``InvalidArgument`` ``"<context>: <problem>: invalid argument"`` if invalid.

    ``empty_label_key=False`` leaves out D2 (an empty label key with a value), which
    containerd only meets when writing, after the existence check: create checks it then.
    """
    problem = record_problem(c, empty_label_key=empty_label_key)
    if problem is not None:
        raise InvalidArgument(f"{context}: {problem}: invalid argument")


def drop_empty_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Labels as stored: those with an empty value are dropped."""
    return {k: v for k, v in labels.items() if v != ""}
