"""Contract tests for ``ctrledger.Store``: containerd 1.6 container-store semantics.

The rows come from three places:

* containerd's own tables (``metadata/containers_test.go``: ``TestContainersList`` and
  ``TestContainersCreateUpdateDelete``; ``identifiers/validate_test.go``;
  ``labels/validate_test.go``), ported row by row under their containerd names;
* every rule of ``/work/shared/reference/containerd-containers.md`` §1-§7 (rows are
  named after the rule; "[obs]" rows were also checked against a containerd 1.6.20
  daemon with ``ctr``);
* ctrledger's deliberate differences, in tests named ``test_d1_`` .. ``test_d5_``:

  D1  extensions behave like labels (whole-map replace; ``extensions.<k>`` absent deletes)
  D2  an empty label key with a value is InvalidArgument, not UNKNOWN
  D3  no printf mangling of ``%`` in messages
  D5  ``sandbox`` is stored and returned, never an update path, kept by a full replace

Every error row asserts the category, its ``.code`` and the exact message.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import ctrledger
from ctrledger import (
    AlreadyExists,
    Conflict,
    Container,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Payload,
    Runtime,
    StoreError,
)

PATTERN = r"^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$"
SPEC_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
SPEC = Payload(SPEC_URL, b"{}")
SPEC_UPDATED = Payload(SPEC_URL, b'{"annotations":{"updated":"true"}}')
RT = Runtime("testruntime")
RUNC = Runtime("io.containerd.runc.v2")
EXT_HELLO = Payload("test.update.extensions", b"hello")
EXT_WORLD = Payload("test.update.extensions", b"world")
EXT_UNIVERSE = Payload("test.update.extensions", b"universe")
EXT_FOO = Payload("test.update.extensions", b"foo")
ID = "web-1"
T0 = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

CODES = {
    NotFound: "NOT_FOUND",
    AlreadyExists: "ALREADY_EXISTS",
    InvalidArgument: "INVALID_ARGUMENT",
    FailedPrecondition: "FAILED_PRECONDITION",
    Conflict: "ABORTED",
}


# -- helpers -------------------------------------------------------------------------------


class Clock:
    """A deterministic clock: ``T0``, then one second later on every call (or frozen)."""

    def __init__(self, start: datetime = T0, step: timedelta = timedelta(seconds=1)) -> None:
        self.now = start
        self.step = step
        self.last: datetime | None = None

    def __call__(self) -> datetime:
        self.last = self.now
        self.now = self.now + self.step
        return self.last


@dataclass(frozen=True)
class Err:
    cls: type[StoreError]
    message: str


def check_error(excinfo: pytest.ExceptionInfo[StoreError], expected: Err) -> None:
    err = excinfo.value
    assert type(err) is expected.cls, f"{type(err).__name__}: {err}"
    assert isinstance(err, StoreError)
    assert err.code == CODES[expected.cls]
    assert str(err) == expected.message


def base(id: str = ID, **kw: Any) -> Container:  # noqa: A002
    """A valid container: runtime and spec set, everything else from ``kw``."""
    kw.setdefault("runtime", RT)
    kw.setdefault("spec", SPEC)
    return Container(id=id, **kw)


def fields(c: Container) -> dict[str, Any]:
    """The client-visible fields of a record, without timestamps and version."""
    return {
        "id": c.id,
        "labels": dict(c.labels),
        "image": c.image,
        "runtime": c.runtime,
        "spec": c.spec,
        "snapshotter": c.snapshotter,
        "snapshot_key": c.snapshot_key,
        "extensions": dict(c.extensions),
        "sandbox": c.sandbox,
    }


def expect(id: str = ID, **kw: Any) -> dict[str, Any]:  # noqa: A002
    """The ``fields()`` of a record with defaults for everything not given."""
    out: dict[str, Any] = {
        "id": id,
        "labels": {},
        "image": "",
        "runtime": RT,
        "spec": SPEC,
        "snapshotter": "",
        "snapshot_key": "",
        "extensions": {},
        "sandbox": "",
    }
    out.update(kw)
    return out


def bad_id(shown: str) -> str:
    return (
        f"create container failed validation: container.ID: identifier {shown} must match {PATTERN}: "
        "invalid argument"
    )


def too_long(shown: str) -> str:
    return (
        f"create container failed validation: container.ID: identifier {shown} "
        "greater than maximum length (76 characters): invalid argument"
    )


def label_too_big(key10: str, context: str = "create container failed validation") -> str:
    return (
        f"{context}: containers.Labels: label key and value greater than maximum size "
        f"(4096 bytes), key: {key10}: invalid argument"
    )


def cannot_update(path: str, id: str = ID) -> Err:  # noqa: A002
    return Err(InvalidArgument, f'cannot update "{path}" field on "{id}": invalid argument')


def update_invalid(reason: str) -> Err:
    return Err(InvalidArgument, f"update failed validation: {reason}: invalid argument")


def create_invalid(reason: str) -> Err:
    return Err(InvalidArgument, f"create container failed validation: {reason}: invalid argument")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(target: str, clock: Clock) -> Any:
    with ctrledger.open(target, clock=clock, follow=False) as s:
        yield s


def assert_absent(store: Any, id: str, namespace: str) -> None:  # noqa: A002
    """Nothing was created: get is NOT_FOUND, list is empty and the namespace never held a container."""
    with pytest.raises(NotFound):
        store.get(id, namespace=namespace)
    assert store.list(namespace=namespace) == []
    with pytest.raises(NotFound) as ei:
        store.update(Container(id="probe", image="x"), "image", namespace=namespace)
    check_error(ei, Err(NotFound, f'cannot update container "probe" in namespace "{namespace}": not found'))


# -- the public surface --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "code"),
    [pytest.param(cls, code, id=cls.__name__) for cls, code in CODES.items()],
)
def test_error_categories_have_codes_and_share_a_root(cls: type[StoreError], code: str) -> None:
    assert issubclass(cls, StoreError)
    assert cls.code == code
    err = cls("some message")
    assert str(err) == "some message"


# -- §2 identifiers (create) ---------------------------------------------------------------

# identifiers/validate_test.go: TestValidIdentifiers, plus §2 rows.
VALID_IDS = [
    pytest.param("default", id="containerd-default"),
    pytest.param("Default", id="containerd-Default"),
    pytest.param("TestValidIdentifiers", id="containerd-t.Name"),
    pytest.param("default-default", id="containerd-default-default"),
    pytest.param("containerd.io", id="containerd-containerd.io"),
    pytest.param("foo.boo", id="containerd-foo.boo"),
    pytest.param("swarmkit.docker.io", id="containerd-swarmkit.docker.io"),
    pytest.param("0912341234", id="containerd-digits"),
    pytest.param("task.0.0123456789", id="containerd-task.0.0123456789"),
    pytest.param("container.system-75-f19a.00", id="containerd-container.system-75-f19a.00"),
    pytest.param("underscores_are_allowed", id="containerd-underscores_are_allowed"),
    pytest.param("a" * 76, id="containerd-maxLength-76"),
    pytest.param("9", id="single-digit"),
    pytest.param("A_b-c.d", id="every-separator"),
    pytest.param("ABC", id="upper-case"),
]


@pytest.mark.parametrize("cid", VALID_IDS)
def test_create_accepts_valid_id(store: Any, cid: str) -> None:
    created = store.create(base(cid))
    assert created.id == cid
    assert store.get(cid) == created


# identifiers/validate_test.go: TestInvalidIdentifiers, plus §2 rows ([obs] = checked with ctr).
INVALID_IDS = [
    pytest.param("", "create container failed validation: container.ID: identifier must not be empty: "
                 "invalid argument", id="containerd-empty"),
    pytest.param(".foo..foo", bad_id('".foo..foo"'), id="containerd-.foo..foo"),
    pytest.param("foo/foo", bad_id('"foo/foo"'), id="containerd-foo/foo"),
    pytest.param("foo/..", bad_id('"foo/.."'), id="containerd-foo/.."),
    pytest.param("foo..foo", bad_id('"foo..foo"'), id="containerd-foo..foo"),
    pytest.param("foo.-boo", bad_id('"foo.-boo"'), id="containerd-foo.-boo"),
    pytest.param("-foo.boo", bad_id('"-foo.boo"'), id="containerd--foo.boo"),
    pytest.param("foo.boo-", bad_id('"foo.boo-"'), id="containerd-foo.boo-"),
    pytest.param("but__only_tasteful_underscores", bad_id('"but__only_tasteful_underscores"'),
                 id="containerd-double-underscore"),
    pytest.param("zn--e9.org", bad_id('"zn--e9.org"'), id="containerd-zn--e9.org"),
    pytest.param("default--default", bad_id('"default--default"'), id="containerd-default--default"),
    pytest.param("a" * 77, too_long('"' + "a" * 77 + '"'), id="containerd-maxLength+1"),
    pytest.param("é" * 39, too_long('"' + "é" * 39 + '"'), id="obs-39-e-acute-is-78-bytes-length-first"),
    pytest.param("é" * 38, bad_id('"' + "é" * 38 + '"'), id="38-e-acute-is-76-bytes-pattern"),
    pytest.param("a b", bad_id('"a b"'), id="space"),
    pytest.param("a:b", bad_id('"a:b"'), id="colon"),
    pytest.param("a@b", bad_id('"a@b"'), id="at"),
    pytest.param("_a", bad_id('"_a"'), id="leading-underscore"),
    pytest.param("a.", bad_id('"a."'), id="trailing-dot"),
    pytest.param("café", bad_id('"café"'), id="obs-non-ascii-printable-kept"),
    pytest.param("a\u00a0b", bad_id('"a\\u00a0b"'), id="obs-nbsp-escaped"),
    pytest.param("a\tb", bad_id('"a\\tb"'), id="obs-tab-escaped"),
    pytest.param('a"b', bad_id('"a\\"b"'), id="obs-quote-escaped"),
    pytest.param("a\\b", bad_id('"a\\\\b"'), id="obs-backslash-escaped"),
]


@pytest.mark.parametrize(("cid", "message"), INVALID_IDS)
def test_create_rejects_invalid_id(store: Any, cid: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as ei:
        store.create(base(cid), namespace="fresh")
    check_error(ei, Err(InvalidArgument, message))
    assert_absent(store, cid, "fresh")


@pytest.mark.parametrize("cid", [
    pytest.param("a b", id="space"),
    pytest.param("-x", id="leading-dash"),
    pytest.param("a" * 77, id="too-long"),
    pytest.param("", id="empty-get-delete"),
])
def test_get_update_delete_do_not_validate_the_id(store: Any, cid: str) -> None:
    store.create(base("other"))
    with pytest.raises(NotFound) as ei:
        store.get(cid)
    check_error(ei, Err(NotFound, f'container "{cid}" in namespace "default": not found'))
    with pytest.raises(NotFound) as ei:
        store.delete(cid)
    check_error(ei, Err(NotFound, f"container {cid}: not found"))
    if cid:  # an empty ID on update is "Container.ID required" (tested below)
        with pytest.raises(NotFound) as ei:
            store.update(Container(id=cid, image="x"), "image")
        check_error(ei, Err(NotFound, f'container "{cid}": not found'))


def test_not_found_messages_quote_go_style_except_delete(store: Any) -> None:
    store.create(base())
    with pytest.raises(NotFound) as ei:
        store.get("a\tb")
    check_error(ei, Err(NotFound, 'container "a\\tb" in namespace "default": not found'))
    with pytest.raises(NotFound) as ei:
        store.update(Container(id='a"b'), "image")
    check_error(ei, Err(NotFound, 'container "a\\"b": not found'))
    with pytest.raises(NotFound) as ei:
        store.delete('a"b')
    check_error(ei, Err(NotFound, 'container a"b: not found'))


# -- §3 labels and §6.1 create ---------------------------------------------------------------

K4095 = "k" * 4095
INVALID_CREATES = [
    # metadata/containers_test.go: SnapshotKeyWithoutSnapshot
    pytest.param(dict(snapshot_key="/nosnapshot", snapshotter=""),
                 create_invalid("container.Snapshotter must be set if container.SnapshotKey is set"),
                 id="containerd-SnapshotKeyWithoutSnapshot"),
    # labels/validate_test.go: TestInvalidLabels (key of maxSize plus a one-byte value)
    pytest.param(dict(labels={"s" * 4096: "s"}), Err(InvalidArgument, label_too_big("ssssssssss")),
                 id="containerd-TestInvalidLabels"),
    pytest.param(dict(labels={K4095: "vv"}), Err(InvalidArgument, label_too_big("kkkkkkkkkk")),
                 id="label-4097-bytes"),
    pytest.param(dict(labels={"k": "v" * 4096}), Err(InvalidArgument, label_too_big("k")),
                 id="label-value-makes-4097-short-key-shown-whole"),
    pytest.param(dict(labels={"k" * 4097: ""}), Err(InvalidArgument, label_too_big("kkkkkkkkkk")),
                 id="label-4097-byte-key-empty-value-checked-before-drop"),
    pytest.param(dict(labels={"é" * 2048: "v"}), Err(InvalidArgument, label_too_big("ééééé")),
                 id="label-multibyte-counts-bytes"),
    pytest.param(dict(labels={"a" + "é" * 2100: "v"}), Err(InvalidArgument, label_too_big("aéééé\ufffd")),
                 id="obs-label-key-cut-at-10-bytes-mid-rune"),
    pytest.param(dict(labels={"ok": "1", "big": "v" * 5000, "also": "2"}),
                 Err(InvalidArgument, label_too_big("big")), id="one-bad-label-fails-whole-request"),
    pytest.param(dict(extensions={"": EXT_HELLO}),
                 create_invalid("container.Extension keys must not be zero-length"), id="extension-key-empty"),
    pytest.param(dict(runtime=Runtime()), create_invalid("container.Runtime.Name must be set"),
                 id="runtime-missing"),
    pytest.param(dict(runtime=Runtime("", Payload("opts", b"x"))), create_invalid("container.Runtime.Name must be set"),
                 id="runtime-name-empty-with-options"),
    pytest.param(dict(spec=None), create_invalid("container.Spec must be set"), id="spec-missing"),
    # §6.1 check order: the first failure wins
    pytest.param(dict(id="a b", extensions={"": EXT_HELLO}, runtime=Runtime(), spec=None),
                 Err(InvalidArgument, bad_id('"a b"')), id="order-id-before-extensions"),
    pytest.param(dict(extensions={"": EXT_HELLO}, labels={K4095: "vv"}, runtime=Runtime()),
                 create_invalid("container.Extension keys must not be zero-length"),
                 id="order-extensions-before-labels"),
    pytest.param(dict(labels={K4095: "vv"}, runtime=Runtime(), spec=None),
                 Err(InvalidArgument, label_too_big("kkkkkkkkkk")), id="order-labels-before-runtime"),
    pytest.param(dict(runtime=Runtime(), spec=None), create_invalid("container.Runtime.Name must be set"),
                 id="order-runtime-before-spec"),
    pytest.param(dict(spec=None, snapshot_key="k"), create_invalid("container.Spec must be set"),
                 id="order-spec-before-snapshotter"),
]


@pytest.mark.parametrize(("kw", "err"), INVALID_CREATES)
def test_create_rejects_invalid_record(store: Any, kw: dict[str, Any], err: Err) -> None:
    kw = dict(kw)
    cid = kw.pop("id", ID)
    with pytest.raises(StoreError) as ei:
        store.create(base(cid, **kw), namespace="fresh")
    check_error(ei, err)
    assert_absent(store, cid, "fresh")


VALID_CREATES = [
    pytest.param(dict(), expect(), id="minimal-fields-echoed-empty"),
    pytest.param(
        dict(image="docker.io/library/nginx:1.27", runtime=Runtime("io.containerd.runc.v2", Payload("opt", b"o")),
             labels={"env": "prod"}, snapshotter="overlayfs", snapshot_key="k",
             extensions={"e": Payload("t", b"v")}, sandbox="sb"),
        expect(image="docker.io/library/nginx:1.27", runtime=Runtime("io.containerd.runc.v2", Payload("opt", b"o")),
               labels={"env": "prod"}, snapshotter="overlayfs", snapshot_key="k",
               extensions={"e": Payload("t", b"v")}, sandbox="sb"),
        id="every-field-echoed"),
    pytest.param(dict(spec=Payload()), expect(spec=Payload()), id="empty-spec-counts-as-present"),
    pytest.param(dict(snapshotter="overlayfs"), expect(snapshotter="overlayfs"), id="snapshotter-without-key"),
    pytest.param(dict(image="not a / valid : ref @@"), expect(image="not a / valid : ref @@"),
                 id="image-not-validated"),
    # labels/validate_test.go: TestValidLabels
    pytest.param(dict(labels={"some": "value", "s": "s" * 4095}), expect(labels={"some": "value", "s": "s" * 4095}),
                 id="containerd-TestValidLabels"),
    pytest.param(dict(labels={K4095: "v"}), expect(labels={K4095: "v"}), id="label-exactly-4096-bytes"),
    pytest.param(dict(labels={"é" * 2047: "vv"}), expect(labels={"é" * 2047: "vv"}),
                 id="label-multibyte-exactly-4096-bytes"),
    pytest.param(dict(labels={"k" * 4096: ""}), expect(), id="label-4096-byte-key-empty-value-accepted-then-dropped"),
    pytest.param(dict(labels={"a": "1", "b": ""}), expect(labels={"a": "1"}), id="empty-value-dropped"),
    pytest.param(dict(labels={"": "", "a": "1"}), expect(labels={"a": "1"}), id="empty-key-empty-value-dropped"),
    pytest.param(dict(labels={"a/b": "1", "with space": "2", "k=v": "3", "x,y": "4", "ключ": "значение", "a.b": "5"}),
                 expect(labels={"a/b": "1", "with space": "2", "k=v": "3", "x,y": "4", "ключ": "значение", "a.b": "5"}),
                 id="label-keys-have-no-character-rules"),
    pytest.param(dict(labels={f"l{i}": str(i) for i in range(300)}),
                 expect(labels={f"l{i}": str(i) for i in range(300)}), id="no-limit-on-label-count"),
    pytest.param(dict(created_at=datetime(2000, 1, 1, tzinfo=UTC), updated_at=datetime(2001, 1, 1, tzinfo=UTC),
                      version=42), expect(), id="client-timestamps-and-version-ignored"),
]


@pytest.mark.parametrize(("kw", "expected"), VALID_CREATES)
def test_create_returns_the_stored_record(store: Any, clock: Clock, kw: dict[str, Any],
                                          expected: dict[str, Any]) -> None:
    created = store.create(base(**kw), namespace="default", actor="alice", reason="deploy 42")
    assert fields(created) == expected
    assert created.created_at == created.updated_at == clock.last
    assert created.created_at.utcoffset() == timedelta(0)
    assert created.version >= 1
    assert store.get(ID) == created
    assert store.list() == [created]


def test_create_existing_id_is_already_exists(store: Any) -> None:
    first = store.create(base(labels={"a": "1"}))
    with pytest.raises(AlreadyExists) as ei:
        store.create(base(labels={"b": "2"}))
    check_error(ei, Err(AlreadyExists, f'container "{ID}": already exists'))
    assert store.get(ID) == first


def test_create_existing_id_with_invalid_input_reports_validation(store: Any) -> None:
    store.create(base())
    with pytest.raises(InvalidArgument) as ei:
        store.create(base(spec=None))
    check_error(ei, create_invalid("container.Spec must be set"))


def test_create_ids_are_case_sensitive(store: Any) -> None:
    for cid in ("abc", "ABC", "Abc"):
        store.create(base(cid, labels={"who": cid}))
    assert [c.id for c in store.list()] == ["ABC", "Abc", "abc"]
    assert store.get("Abc").labels == {"who": "Abc"}
    with pytest.raises(NotFound):
        store.get("aBC")


def test_returned_records_are_copies(store: Any) -> None:
    labels = {"a": "1"}
    created = store.create(base(labels=labels))
    labels["b"] = "2"
    created.labels["c"] = "3"  # type: ignore[index]
    store.get(ID).labels["d"] = "4"  # type: ignore[index]
    assert store.get(ID).labels == {"a": "1"}


# -- §4 namespaces -------------------------------------------------------------------------


def _call(store: Any, method: str, ns: Any) -> Any:
    if method == "create":
        return store.create(base(), namespace=ns)
    if method == "get":
        return store.get(ID, namespace=ns)
    if method == "list":
        return store.list(namespace=ns)
    if method == "list-with-bad-filter":
        return store.list("id==", namespace=ns)
    if method == "update":
        return store.update(Container(id=ID, image="x"), "image", namespace=ns)
    if method == "update-full-replace":
        return store.update(base(), namespace=ns)
    if method == "delete":
        return store.delete(ID, namespace=ns)
    raise AssertionError(method)


METHODS = ["create", "get", "list", "list-with-bad-filter", "update", "update-full-replace", "delete"]
NS_REQUIRED = Err(FailedPrecondition, "namespace is required: failed precondition")


def ns_invalid(shown: str) -> Err:
    return Err(InvalidArgument, f"namespace validation: identifier {shown} must match {PATTERN}: invalid argument")


BAD_NAMESPACES = [
    pytest.param(None, NS_REQUIRED, id="none"),
    pytest.param("", NS_REQUIRED, id="empty"),
    pytest.param("a b", ns_invalid('"a b"'), id="space"),
    pytest.param("-ns", ns_invalid('"-ns"'), id="leading-dash"),
    pytest.param("a..b", ns_invalid('"a..b"'), id="double-separator"),
    pytest.param("k8s.io/x", ns_invalid('"k8s.io/x"'), id="slash"),
    pytest.param("é", ns_invalid('"é"'), id="non-ascii"),
    pytest.param("n" * 77, Err(InvalidArgument, 'namespace validation: identifier "' + "n" * 77
                              + '" greater than maximum length (76 characters): invalid argument'), id="too-long"),
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("ns", "err"), BAD_NAMESPACES)
def test_every_method_checks_the_namespace_first(store: Any, method: str, ns: Any, err: Err) -> None:
    store.create(base())  # the container exists in "default", so only the namespace can be wrong
    with pytest.raises(StoreError) as ei:
        _call(store, method, ns)
    check_error(ei, err)
    assert store.list() == [store.get(ID)]


@pytest.mark.parametrize("ns", [
    pytest.param(None, id="none"), pytest.param("", id="empty"), pytest.param("a b", id="invalid"),
])
def test_update_requires_container_id_before_namespace(store: Any, ns: Any) -> None:
    with pytest.raises(InvalidArgument) as ei:
        store.update(Container(id="", image="x"), "image", namespace=ns)
    check_error(ei, Err(InvalidArgument, "Container.ID required"))


def test_update_requires_container_id_full_replace(store: Any) -> None:
    store.create(base())
    with pytest.raises(InvalidArgument) as ei:
        store.update(base(""))
    check_error(ei, Err(InvalidArgument, "Container.ID required"))


def test_create_namespace_checked_before_record(store: Any) -> None:
    with pytest.raises(FailedPrecondition) as ei:
        store.create(base("a b", spec=None), namespace=None)
    check_error(ei, NS_REQUIRED)
    with pytest.raises(InvalidArgument) as ei:
        store.create(base("a b", spec=None), namespace="b ad")
    check_error(ei, ns_invalid('"b ad"'))


@pytest.mark.parametrize("ns", [
    pytest.param("k8s.io", id="dotted"), pytest.param("moby", id="plain"), pytest.param("n" * 76, id="76-bytes"),
    pytest.param("0", id="digit"), pytest.param("Default", id="upper-case"), pytest.param("a_b-c", id="separators"),
])
def test_valid_namespaces_need_no_creation(store: Any, ns: str) -> None:
    assert store.list(namespace=ns) == []
    created = store.create(base(), namespace=ns)
    assert store.get(ID, namespace=ns) == created
    assert store.list(namespace=ns) == [created]
    with pytest.raises(NotFound):
        store.get(ID, namespace="default")


def test_namespaces_are_isolated(store: Any) -> None:
    a = store.create(base(labels={"ns": "a"}, image="img-a"), namespace="ns-a")
    b = store.create(base(labels={"ns": "b"}, image="img-b"), namespace="ns-b")
    assert store.get(ID, namespace="ns-a") == a
    assert store.get(ID, namespace="ns-b") == b
    upd = store.update(Container(id=ID, image="img-a2"), "image", namespace="ns-a")
    assert upd.image == "img-a2"
    assert store.get(ID, namespace="ns-b") == b
    store.delete(ID, namespace="ns-b")
    assert store.get(ID, namespace="ns-a") == upd
    assert store.list(namespace="ns-a") == [upd]
    assert store.list(namespace="ns-b") == []
    assert store.list(namespace="default") == []


def test_namespace_names_are_case_sensitive(store: Any) -> None:
    upper = store.create(base(labels={"ns": "Mixed"}), namespace="Mixed")
    with pytest.raises(NotFound) as ei:
        store.get(ID, namespace="mixed")
    check_error(ei, Err(NotFound, f'container "{ID}" in namespace "mixed": not found'))
    with pytest.raises(NotFound) as ei:
        store.delete(ID, namespace="mixed")
    check_error(ei, Err(NotFound, f'cannot delete container "{ID}" in namespace "mixed": not found'))
    lower = store.create(base(labels={"ns": "mixed"}), namespace="mixed")
    assert store.get(ID, namespace="Mixed") == upper
    assert store.list(namespace="mixed") == [lower]
    assert store.list(namespace="MIXED") == []


# -- §5 / §6.3 NOT_FOUND wordings -------------------------------------------------------------


def _setup_namespace(store: Any, state: str) -> None:
    """Bring namespace "ns" into ``state``."""
    if state == "never-used":
        store.create(base("elsewhere"), namespace="other")  # same ID elsewhere must not matter
        store.create(base("x"), namespace="other")
    elif state == "failed-create-only":
        with pytest.raises(InvalidArgument):
            store.create(base("x", spec=None), namespace="ns")
    elif state == "holds-others":
        store.create(base("y"), namespace="ns")
    elif state == "emptied":
        store.create(base("y"), namespace="ns")
        store.delete("y", namespace="ns")
    elif state == "x-deleted":
        store.create(base("x"), namespace="ns")
        store.delete("x", namespace="ns")
    else:
        raise AssertionError(state)


LONG = {"never-used", "failed-create-only"}
NS_STATES = ["never-used", "failed-create-only", "holds-others", "emptied", "x-deleted"]


@pytest.mark.parametrize("state", NS_STATES)
def test_get_not_found_wording_is_the_same_everywhere(store: Any, state: str) -> None:
    _setup_namespace(store, state)
    with pytest.raises(NotFound) as ei:
        store.get("x", namespace="ns")
    check_error(ei, Err(NotFound, 'container "x" in namespace "ns": not found'))


@pytest.mark.parametrize("state", NS_STATES)
def test_update_not_found_wording_depends_on_namespace_history(store: Any, state: str) -> None:
    _setup_namespace(store, state)
    with pytest.raises(NotFound) as ei:
        store.update(Container(id="x", image="i"), "image", namespace="ns")
    msg = 'cannot update container "x" in namespace "ns": not found' if state in LONG else 'container "x": not found'
    check_error(ei, Err(NotFound, msg))


@pytest.mark.parametrize("state", NS_STATES)
def test_delete_not_found_wording_depends_on_namespace_history(store: Any, state: str) -> None:
    _setup_namespace(store, state)
    with pytest.raises(NotFound) as ei:
        store.delete("x", namespace="ns")
    msg = 'cannot delete container "x" in namespace "ns": not found' if state in LONG else "container x: not found"
    check_error(ei, Err(NotFound, msg))


@pytest.mark.parametrize("paths", [
    pytest.param(("runtime",), id="invalid-path-runtime"),
    pytest.param(("sandbox",), id="invalid-path-sandbox"),
    pytest.param((), id="full-replace-immutable-mismatch"),
])
def test_update_unknown_id_is_not_found_before_paths_are_checked(store: Any, paths: tuple[str, ...]) -> None:
    store.create(base(snapshotter="overlayfs"))
    with pytest.raises(NotFound) as ei:
        store.update(Container(id="ghost", runtime=Runtime("other")), *paths)
    check_error(ei, Err(NotFound, 'container "ghost": not found'))


def test_delete_twice_is_not_found(store: Any) -> None:
    store.create(base())
    store.delete(ID, actor="bob", reason="cleanup")
    with pytest.raises(NotFound) as ei:
        store.delete(ID)
    check_error(ei, Err(NotFound, f"container {ID}: not found"))
    with pytest.raises(NotFound) as ei:
        store.update(Container(id=ID, image="x"), "image")
    check_error(ei, Err(NotFound, f'container "{ID}": not found'))
    assert store.list() == []


# -- §6.2 update: containerd's table (metadata/containers_test.go) ---------------------------

ORIG = dict(spec=SPEC, snapshot_key="test-snapshot-key", snapshotter="snapshotter", runtime=RT, image="test image")
ORIG_EXT = dict(spec=SPEC, runtime=RT, extensions={"hello": EXT_HELLO})

UPDATE_CASES = [
    # ---- ported from containerd TestContainersCreateUpdateDelete ----
    pytest.param(ORIG, dict(id="newid", spec=SPEC, runtime=RT), ("id",),
                 Err(NotFound, 'container "newid": not found'), id="containerd-UpdateIDFail"),
    pytest.param(ORIG, dict(spec=SPEC, runtime=Runtime("testruntimedifferent")), ("runtime",),
                 cannot_update("runtime"), id="containerd-UpdateRuntimeFail"),
    pytest.param(ORIG, dict(spec=SPEC), ("runtime",), cannot_update("runtime"), id="containerd-UpdateRuntimeClearFail"),
    pytest.param(ORIG, dict(spec=SPEC_UPDATED), ("spec",), expect(**{**ORIG, "spec": SPEC_UPDATED}),
                 id="containerd-UpdateSpec"),
    pytest.param(ORIG, dict(snapshot_key="test2-snapshot-key"), ("snapshotkey",),
                 expect(**{**ORIG, "snapshot_key": "test2-snapshot-key"}), id="containerd-UpdateSnapshot"),
    pytest.param(ORIG, dict(image="test2 image"), ("image",), expect(**{**ORIG, "image": "test2 image"}),
                 id="containerd-UpdateImage"),
    pytest.param({**ORIG, "labels": {"foo": "one", "bar": "two"}}, dict(labels={"bar": "baz"}), ("labels.bar",),
                 expect(**{**ORIG, "labels": {"foo": "one", "bar": "baz"}}), id="containerd-UpdateLabel"),
    pytest.param({**ORIG, "labels": {"foo": "one", "bar": "two"}}, dict(labels=None), ("labels",),
                 expect(**ORIG), id="containerd-DeleteAllLabels"),
    pytest.param({**ORIG, "labels": {"foo": "one", "bar": "two"}}, dict(labels={"bar": ""}), ("labels.bar",),
                 expect(**{**ORIG, "labels": {"foo": "one"}}), id="containerd-DeleteLabel"),
    pytest.param(dict(spec=SPEC, runtime=RT), dict(snapshot_key="something", snapshotter="something"),
                 ("snapshotkey", "snapshotter"), cannot_update("snapshotter"),
                 id="containerd-UpdateSnapshotKeyImmutable"),
    pytest.param(ORIG_EXT, dict(spec=SPEC, runtime=RT, extensions={"hello": EXT_WORLD}), (),
                 expect(extensions={"hello": EXT_WORLD}), id="containerd-UpdateExtensionsFull"),
    pytest.param(ORIG_EXT, dict(spec=SPEC, runtime=RT, extensions={"hello": EXT_WORLD}), ("labels",),
                 expect(extensions={"hello": EXT_HELLO}), id="containerd-UpdateExtensionsNotInFieldpath"),
    pytest.param(ORIG_EXT, dict(labels={"foo": "one"}, extensions={"hello": EXT_WORLD}), ("extensions",),
                 expect(extensions={"hello": EXT_WORLD}), id="containerd-UpdateExtensionsFieldPath"),
    pytest.param(ORIG_EXT, dict(extensions={"hello": EXT_UNIVERSE, "bar": EXT_FOO}), ("extensions.bar",),
                 expect(extensions={"hello": EXT_HELLO, "bar": EXT_FOO}),
                 id="containerd-UpdateExtensionsFieldPathIsolated"),
    # containerd's pre-1.4 "UpdateFail" row expected InvalidArgument; 1.6 (spec §6.2 step 4) clears the image.
    pytest.param(ORIG, dict(spec=SPEC, runtime=RT, snapshot_key="test-snapshot-key", snapshotter="snapshotter"), (),
                 expect(**{**ORIG, "image": ""}), id="containerd-UpdateFail-is-now-full-replace-clears-image"),

    # ---- §6.2 step 5: paths ----
    pytest.param({**ORIG, "labels": {"a": "1"}}, dict(labels={"a.b": "x"}), ("labels.a.b",),
                 expect(**{**ORIG, "labels": {"a": "1", "a.b": "x"}}), id="labels-key-is-everything-after-first-dot"),
    pytest.param({**ORIG, "labels": {"a": "1", "b": "2"}}, dict(labels={}), ("labels.a",),
                 expect(**{**ORIG, "labels": {"b": "2"}}), id="labels-key-absent-from-request-deletes"),
    pytest.param({**ORIG, "labels": {"a": "1"}}, dict(labels={}), ("labels.zzz",),
                 expect(**{**ORIG, "labels": {"a": "1"}}), id="labels-key-absent-everywhere-is-noop"),
    pytest.param({**ORIG, "labels": {"a": "1"}}, dict(labels={"b": "2", "c": "3"}), ("labels.b",),
                 expect(**{**ORIG, "labels": {"a": "1", "b": "2"}}), id="labels-key-copies-only-that-key"),
    pytest.param({**ORIG, "labels": {"a": "1"}}, dict(labels={"x": "1", "y": ""}), ("labels",),
                 expect(**{**ORIG, "labels": {"x": "1"}}), id="labels-replaces-whole-map-empty-values-dropped"),
    pytest.param({**ORIG, "labels": {"a": "1"}}, dict(labels={"q": "9"}), ("labels.a", "labels"),
                 expect(**{**ORIG, "labels": {"q": "9"}}), id="repeat-later-labels-wins"),
    pytest.param({**ORIG, "labels": {"a": "1"}}, dict(labels={"q": "9", "r": "8"}), ("labels", "labels.q"),
                 expect(**{**ORIG, "labels": {"q": "9", "r": "8"}}), id="repeat-labels-then-key"),
    pytest.param({**ORIG, "labels": {"a": "1"}}, dict(labels={"a": "2", "b": "3"}), ("labels.a", "labels.b"),
                 expect(**{**ORIG, "labels": {"a": "2", "b": "3"}}), id="several-label-keys"),
    pytest.param({**ORIG, "labels": {"a": "1"}}, dict(labels={}), ("labels.",),
                 expect(**{**ORIG, "labels": {"a": "1"}}), id="labels-dot-empty-key-is-noop"),
    pytest.param({**ORIG, "labels": {"a": "1"}}, dict(image="x"), ("image", "image"),
                 expect(**{**ORIG, "labels": {"a": "1"}, "image": "x"}), id="repeat-same-path"),
    pytest.param(ORIG, dict(image=""), ("image",), expect(**{**ORIG, "image": ""}), id="image-unset-clears"),
    pytest.param(ORIG, dict(snapshot_key=""), ("snapshotkey",), expect(**{**ORIG, "snapshot_key": ""}),
                 id="snapshotkey-unset-clears"),
    pytest.param(ORIG, dict(image="new", runtime=Runtime("other"), snapshotter="other", labels={"x": "y"},
                            spec=SPEC_UPDATED, snapshot_key="other"), ("image",),
                 expect(**{**ORIG, "image": "new"}), id="fields-no-path-names-are-ignored-even-immutable"),
    pytest.param(dict(spec=SPEC, runtime=RT), dict(labels={"k" * 4097: "v"}), ("labels",),
                 update_invalid("containers.Labels: label key and value greater than maximum size (4096 bytes), "
                                "key: kkkkkkkkkk"), id="labels-merged-record-validated"),
    pytest.param(dict(spec=SPEC, runtime=RT), dict(labels={"k": "v" * 4096}), ("labels.k",),
                 update_invalid("containers.Labels: label key and value greater than maximum size (4096 bytes), "
                                "key: k"), id="label-key-merged-record-validated"),
    # [obs] ctr containers label c1 "<4097 x k>=" -> update failed validation (size checked before drop)
    pytest.param(dict(spec=SPEC, runtime=RT), dict(), ("labels." + "k" * 4097,),
                 update_invalid("containers.Labels: label key and value greater than maximum size (4096 bytes), "
                                "key: kkkkkkkkkk"), id="obs-label-4097-byte-key-absent-checked-before-drop"),
    pytest.param(dict(spec=SPEC, runtime=RT, labels={"a": "1"}), dict(), ("labels." + "k" * 4096,),
                 expect(labels={"a": "1"}), id="obs-label-4096-byte-key-absent-is-noop"),
    pytest.param(ORIG, dict(spec=None), ("spec",), update_invalid("container.Spec must be set"),
                 id="spec-unset-fails-validation"),
    pytest.param(dict(spec=SPEC, runtime=RT), dict(snapshot_key="k"), ("snapshotkey",),
                 update_invalid("container.Snapshotter must be set if container.SnapshotKey is set"),
                 id="snapshotkey-needs-snapshotter"),
    pytest.param(ORIG_EXT, dict(extensions={}), ("extensions.",),
                 update_invalid("container.Extension keys must not be zero-length"), id="extensions-dot-empty-key"),
    pytest.param(ORIG_EXT, dict(extensions={"": EXT_FOO}), ("extensions",),
                 update_invalid("container.Extension keys must not be zero-length"),
                 id="extensions-map-with-empty-key"),
    # step 5 applies every path before step 6 validates, so a bad path after it wins
    pytest.param(ORIG_EXT, dict(extensions={}), ("extensions.", "bogus"), cannot_update("bogus"),
                 id="order-bad-path-reported-before-merged-validation"),
    pytest.param(ORIG, dict(spec=None), ("spec", "runtime"), cannot_update("runtime"),
                 id="order-bad-path-before-spec-validation"),
    pytest.param({**ORIG, "labels": {"a": "1"}}, dict(labels={"b": "2"}, image="changed"),
                 ("labels", "image", "runtime"), cannot_update("runtime"),
                 id="bad-path-after-good-ones-discards-everything"),

    # ---- §6.2 step 4: full replace ----
    pytest.param({**ORIG, "snapshotter": "overlayfs"}, dict(spec=SPEC, runtime=RT, snapshotter="native"), (),
                 Err(InvalidArgument, "container.Snapshotter field is immutable: invalid argument"),
                 id="full-snapshotter-differs"),
    pytest.param({**ORIG, "snapshotter": "overlayfs"}, dict(spec=SPEC, runtime=RT), (),
                 Err(InvalidArgument, "container.Snapshotter field is immutable: invalid argument"),
                 id="full-snapshotter-omitted"),
    pytest.param(ORIG, dict(spec=SPEC, runtime=Runtime("other"), snapshotter="snapshotter"), (),
                 Err(InvalidArgument, "container.Runtime.Name field is immutable: invalid argument"),
                 id="full-runtime-differs"),
    pytest.param(ORIG, dict(spec=SPEC, snapshotter="snapshotter"), (),
                 Err(InvalidArgument, "container.Runtime.Name field is immutable: invalid argument"),
                 id="full-runtime-omitted"),
    pytest.param(ORIG, dict(spec=SPEC, runtime=Runtime("other"), snapshotter="other"), (),
                 Err(InvalidArgument, "container.Snapshotter field is immutable: invalid argument"),
                 id="full-snapshotter-checked-before-runtime"),
    pytest.param(ORIG, dict(runtime=RT, snapshotter="snapshotter"), (), update_invalid("container.Spec must be set"),
                 id="full-spec-omitted-fails-validation"),
    pytest.param({**ORIG, "labels": {"a": "1"}}, dict(runtime=RT, snapshotter="snapshotter", spec=SPEC), (),
                 expect(runtime=RT, snapshotter="snapshotter"), id="full-clears-labels-image-snapshotkey"),
    pytest.param({**ORIG, "runtime": Runtime("testruntime", Payload("opt", b"stored"))},
                 dict(runtime=Runtime("testruntime", Payload("opt", b"other")), snapshotter="snapshotter", spec=SPEC,
                      labels={"n": "1", "e": ""}, image="i2", snapshot_key="k2"),
                 (), expect(runtime=Runtime("testruntime", Payload("opt", b"stored")), snapshotter="snapshotter",
                            labels={"n": "1"}, image="i2", snapshot_key="k2"),
                 id="full-keeps-runtime-options-replaces-the-rest"),
    pytest.param(dict(spec=SPEC, runtime=RT), dict(runtime=RT, spec=SPEC, snapshot_key="k"), (),
                 update_invalid("container.Snapshotter must be set if container.SnapshotKey is set"),
                 id="full-snapshotkey-needs-snapshotter"),
    pytest.param(dict(spec=SPEC, runtime=RT), dict(runtime=RT, spec=SPEC, labels={"k" * 4097: ""}), (),
                 update_invalid("containers.Labels: label key and value greater than maximum size (4096 bytes), "
                                "key: kkkkkkkkkk"), id="full-labels-validated-before-drop"),
    pytest.param({**ORIG, "labels": {"a": "1"}}, dict(**ORIG, labels={"a": "1"}), (), expect(**ORIG, labels={"a": "1"}),
                 id="full-identical-is-a-successful-noop"),
]


@pytest.mark.parametrize(("original", "request_kw", "paths", "outcome"), UPDATE_CASES)
def test_update(store: Any, original: dict[str, Any], request_kw: dict[str, Any], paths: tuple[str, ...],
                outcome: Any) -> None:
    created = store.create(base(**original))
    request_kw = dict(request_kw)
    request = Container(id=request_kw.pop("id", ID), **request_kw)
    if isinstance(outcome, Err):
        with pytest.raises(StoreError) as ei:
            store.update(request, *paths, actor="alice", reason="test")
        check_error(ei, outcome)
        assert store.get(ID) == created  # nothing changed: fields, updated_at, version
        return
    updated = store.update(request, *paths, actor="alice", reason="test")
    assert fields(updated) == outcome
    assert updated.created_at == created.created_at
    assert updated.updated_at > created.updated_at
    assert updated.version > created.version
    assert store.get(ID) == updated
    assert store.list() == [updated]


BAD_PATHS = [
    "id", "runtime", "runtime.name", "runtime.options", "snapshotter", "snapshot_key", "created_at", "updated_at",
    "createdat", "sandbox", "Labels", "labels ", " labels", "LABELS.a", "Image", "spec.x", "image.x", "extension",
    "ext.a", "", ".", "version", "foo",
]


@pytest.mark.parametrize("path", [pytest.param(p, id=repr(p)) for p in BAD_PATHS])
def test_update_rejects_paths_that_are_not_updatable(store: Any, path: str) -> None:
    created = store.create(base(labels={"a": "1"}, image="img"))
    with pytest.raises(InvalidArgument) as ei:
        store.update(base(labels={"b": "2"}, image="new"), "labels", path)
    check_error(ei, cannot_update(path))
    assert store.get(ID) == created


def test_update_id_path_same_id_is_rejected(store: Any) -> None:
    created = store.create(base())
    with pytest.raises(InvalidArgument) as ei:
        store.update(base(), "id")
    check_error(ei, cannot_update("id"))
    assert store.get(ID) == created


def test_update_path_error_names_the_stored_id_quoted_go_style(store: Any) -> None:
    store.create(base("a.b_c"))
    with pytest.raises(InvalidArgument) as ei:
        store.update(Container(id="a.b_c"), 'we"ird')
    check_error(ei, Err(InvalidArgument, 'cannot update "we\\"ird" field on "a.b_c": invalid argument'))


# -- versions, Conflict, failed updates -----------------------------------------------------


def test_version_increments_on_every_write(store: Any) -> None:
    v = store.create(base()).version
    for paths, req in [(("image",), Container(id=ID, image="i1")),
                       (("labels.a",), Container(id=ID, labels={"a": "1"})),
                       (("labels.",), Container(id=ID)),
                       ((), base())]:
        got = store.update(req, *paths)
        assert got.version > v
        assert store.get(ID).version == got.version
        v = got.version


def test_single_field_update_bumps_version_by_one(store: Any) -> None:
    created = store.create(base())
    assert store.update(Container(id=ID, image="i"), "image").version == created.version + 1


def test_update_with_current_expected_version(store: Any) -> None:
    created = store.create(base())
    got = store.update(Container(id=ID, image="i"), "image", expected_version=created.version)
    assert got.image == "i"
    got2 = store.update(Container(id=ID, image="j"), "image", expected_version=got.version)
    assert got2.image == "j"


@pytest.mark.parametrize("offset", [pytest.param(-1, id="stale"), pytest.param(5, id="ahead"),
                                    pytest.param(None, id="zero")])
def test_update_with_wrong_expected_version_is_conflict(store: Any, offset: int | None) -> None:
    store.create(base())
    current = store.update(Container(id=ID, image="i"), "image")
    expected = 0 if offset is None else current.version + offset
    with pytest.raises(Conflict) as ei:
        store.update(Container(id=ID, image="lost"), "image", expected_version=expected)
    check_error(ei, Err(Conflict, f'container "{ID}" is at version {current.version}, '
                                  f"not the expected {expected}: conflict"))
    assert store.get(ID) == current


def test_delete_with_wrong_expected_version_is_conflict(store: Any) -> None:
    created = store.create(base())
    current = store.update(Container(id=ID, image="i"), "image")
    with pytest.raises(Conflict) as ei:
        store.delete(ID, expected_version=created.version, actor="bob")
    check_error(ei, Err(Conflict, f'container "{ID}" is at version {current.version}, '
                                  f"not the expected {created.version}: conflict"))
    assert store.get(ID) == current
    store.delete(ID, expected_version=current.version)
    with pytest.raises(NotFound):
        store.get(ID)


def test_expected_version_on_missing_container_is_not_found(store: Any) -> None:
    store.create(base("other"))
    with pytest.raises(NotFound) as ei:
        store.update(Container(id=ID, image="i"), "image", expected_version=1)
    check_error(ei, Err(NotFound, f'container "{ID}": not found'))
    with pytest.raises(NotFound) as ei:
        store.delete(ID, expected_version=1)
    check_error(ei, Err(NotFound, f"container {ID}: not found"))


def test_expected_version_of_a_previous_incarnation_is_conflict(store: Any) -> None:
    old = store.create(base(labels={"gen": "1"}))
    store.delete(ID)
    new = store.create(base(labels={"gen": "2"}))
    assert new.version != old.version
    with pytest.raises(Conflict):
        store.update(Container(id=ID, image="i"), "image", expected_version=old.version)
    with pytest.raises(Conflict):
        store.delete(ID, expected_version=old.version)
    assert store.get(ID) == new


FAILED_UPDATES = [
    pytest.param(("runtime",), Container(id=ID, runtime=Runtime("x")), id="bad-path"),
    pytest.param((), base(runtime=Runtime("other")), id="immutable-runtime"),
    pytest.param(("spec",), Container(id=ID), id="merged-invalid"),
    pytest.param(("labels", "sandbox"), Container(id=ID, labels={"z": "1"}), id="bad-path-after-good"),
]


@pytest.mark.parametrize(("paths", "request_"), FAILED_UPDATES)
def test_failed_update_leaves_record_timestamps_and_version(store: Any, paths: tuple[str, ...],
                                                             request_: Container) -> None:
    store.create(base(labels={"a": "1"}))
    before = store.update(Container(id=ID, image="i"), "image")
    with pytest.raises(InvalidArgument):
        store.update(request_, *paths)
    assert store.get(ID) == before
    after = store.update(Container(id=ID, image="j"), "image", expected_version=before.version)
    assert after.version == before.version + 1


# -- §7 timestamps ------------------------------------------------------------------------


def test_timestamps_follow_the_clock(store: Any, clock: Clock) -> None:
    created = store.create(base())
    t_create = clock.last
    assert created.created_at == created.updated_at == t_create
    assert created.created_at.tzinfo is not None and created.created_at.utcoffset() == timedelta(0)
    updated = store.update(Container(id=ID, image="i"), "image")
    assert updated.updated_at == clock.last > t_create
    assert updated.created_at == t_create
    got = store.get(ID)
    assert got.created_at == t_create and got.updated_at == updated.updated_at
    assert got.updated_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(("paths", "request_"), [
    pytest.param(("labels.",), Container(id=ID), id="labels-dot-noop"),
    pytest.param(("labels.absent",), Container(id=ID), id="absent-label-noop"),
    pytest.param(("image",), Container(id=ID, image="img"), id="same-image"),
    pytest.param((), base(image="img", labels={"a": "1"}), id="identical-full-replace"),
    pytest.param(("image",), Container(id=ID, image="other"), id="real-change"),
])
def test_updated_at_strictly_increases_on_every_successful_update(store: Any, paths: tuple[str, ...],
                                                                   request_: Container) -> None:
    prev = store.create(base(image="img", labels={"a": "1"}))
    created_at = prev.created_at
    for _ in range(3):
        cur = store.update(request_, *paths)
        assert cur.updated_at > prev.updated_at
        assert cur.version > prev.version
        assert cur.created_at == created_at
        assert store.get(ID) == cur
        prev = cur


@pytest.mark.parametrize("step", [pytest.param(timedelta(0), id="frozen-clock"),
                                  pytest.param(timedelta(seconds=-1), id="clock-going-backwards")])
def test_updated_at_strictly_increases_even_if_the_clock_does_not(tmp_path: Any, step: timedelta) -> None:
    with ctrledger.open(tmp_path / "l.db", clock=Clock(step=step)) as s:
        prev = s.create(base())
        for _ in range(3):
            cur = s.update(Container(id=ID), "labels.")
            assert cur.updated_at > prev.updated_at
            prev = cur
        s.delete(ID)
        again = s.create(base())
        assert again.created_at > prev.updated_at


def test_delete_then_recreate_is_a_fresh_record(store: Any, clock: Clock) -> None:
    old = store.create(base(labels={"a": "1"}, extensions={"e": EXT_HELLO}, image="old", sandbox="sb",
                            snapshotter="overlayfs", snapshot_key="k"))
    store.update(Container(id=ID, labels={"b": "2"}), "labels.b")
    store.delete(ID)
    new = store.create(base())
    assert fields(new) == expect()
    assert new.created_at == new.updated_at == clock.last
    assert new.created_at > old.created_at
    assert store.get(ID) == new
    assert store.list() == [new]
    assert store.list("labels.a==1") == []


def test_client_timestamps_on_update_are_ignored(store: Any) -> None:
    created = store.create(base())
    req = Container(id=ID, image="i", created_at=datetime(1999, 1, 1, tzinfo=UTC),
                    updated_at=datetime(2999, 1, 1, tzinfo=UTC), version=99)
    got = store.update(req, "image")
    assert got.created_at == created.created_at
    assert created.updated_at < got.updated_at < datetime(2999, 1, 1, tzinfo=UTC)
    assert got.version == created.version + 1
    full = store.update(replace(base(image="j"), created_at=datetime(1999, 1, 1, tzinfo=UTC)))
    assert full.created_at == created.created_at


def test_records_survive_reopening(tmp_path: Any) -> None:
    clock = Clock()
    with ctrledger.open(tmp_path / "l.db", clock=clock) as s:
        a = s.create(base("a", labels={"x": "1"}, extensions={"e": EXT_HELLO}, sandbox="sb",
                          runtime=Runtime("r", Payload("o", b"\x00\xff"))))
        s.create(base("b"))
        s.delete("b")
    with ctrledger.open(tmp_path / "l.db", clock=clock) as s:
        assert s.get("a") == a
        assert s.list() == [a]
        with pytest.raises(NotFound) as ei:  # the namespace is still known after reopening
            s.delete("b")
        check_error(ei, Err(NotFound, "container b: not found"))
        with pytest.raises(AlreadyExists):
            s.create(base("a"))


def test_two_handles_on_one_file_see_each_others_writes(tmp_path: Any) -> None:
    with ctrledger.open(tmp_path / "l.db", clock=Clock()) as s1, ctrledger.open(tmp_path / "l.db") as s2:
        created = s1.create(base(labels={"a": "1"}))
        assert s2.get(ID) == created
        with pytest.raises(AlreadyExists):
            s2.create(base())
        upd = s2.update(Container(id=ID, image="i"), "image", expected_version=created.version)
        assert s1.get(ID) == upd
        with pytest.raises(Conflict):
            s1.update(Container(id=ID, image="lost"), "image", expected_version=created.version)
        s1.delete(ID)
        with pytest.raises(NotFound) as ei:
            s2.delete(ID)
        check_error(ei, Err(NotFound, f"container {ID}: not found"))
        assert s2.list() == []


# -- §6.3 list -----------------------------------------------------------------------------

BYTEWISE = ["10", "9", "A", "C", "Z", "a", "a-1", "a.1", "a1", "aB", "a_1", "b"]


def test_list_is_sorted_bytewise_by_id(store: Any) -> None:
    for cid in ["b", "a_1", "a1", "Z", "a.1", "10", "aB", "a-1", "a", "C", "9", "A"]:
        store.create(base(cid))
    assert [c.id for c in store.list()] == BYTEWISE
    assert BYTEWISE == sorted(BYTEWISE, key=lambda s: s.encode())
    assert store.list() == [store.get(cid) for cid in BYTEWISE]


@pytest.mark.parametrize("state", ["never-used", "emptied", "holds-others"])
def test_list_of_an_empty_namespace_is_empty(store: Any, state: str) -> None:
    _setup_namespace(store, state)
    expected = ["y"] if state == "holds-others" else []
    assert [c.id for c in store.list(namespace="ns")] == expected


@pytest.fixture
def containerd_list_set(store: Any) -> Any:
    """TestContainersList's four containers."""
    for i in range(4):
        cid = f"container-{i}"
        store.create(Container(
            id=cid, labels={"idlabel": cid, "even": str(i % 2 == 0).lower(), "odd": str(i % 2 != 0).lower()},
            spec=SPEC, snapshot_key="test-snapshot-key", snapshotter="snapshotter", runtime=RT, image="test image"))
    return store


ALL4 = ["container-0", "container-1", "container-2", "container-3"]


@pytest.mark.parametrize(("filters", "ids"), [
    pytest.param((), ALL4, id="containerd-FullSet"),
    pytest.param(("labels.even==true", "labels.odd==true"), ALL4, id="containerd-FullSetFiltered"),
    pytest.param(("labels.even==true",), ["container-0", "container-2"], id="containerd-Even"),
    pytest.param(("labels.odd==true",), ["container-1", "container-3"], id="containerd-Odd"),
    pytest.param(("id==container-0",), ["container-0"], id="containerd-ByID"),
    pytest.param(("labels.idlabel==container-0,labels.even==true",), ["container-0"], id="containerd-ByIDLabelEven"),
    pytest.param(("runtime.name==testruntime",), ALL4, id="containerd-ByRuntime"),
    pytest.param(("",), ALL4, id="empty-filter-matches-all"),
    pytest.param(("id==nope", ""), ALL4, id="any-empty-filter-matches-all"),
    pytest.param(("id==nope",), [], id="no-match"),
    pytest.param(("labels.idlabel==container-0,labels.odd==true",), [], id="and-within-a-string"),
    pytest.param(("id==container-3", "id==container-1"), ["container-1", "container-3"], id="or-result-sorted"),
])
def test_list_filters(containerd_list_set: Any, filters: tuple[str, ...], ids: list[str]) -> None:
    got = containerd_list_set.list(*filters)
    assert [c.id for c in got] == ids
    assert got == [containerd_list_set.get(i) for i in ids]
    assert containerd_list_set.list_versions(*filters) == [(c.id, c.version) for c in got]


def test_list_filters_issue_example(store: Any) -> None:
    store.create(base("web-1", image="docker.io/library/nginx:1.27", labels={"env": "prod"}))
    store.create(base("web-2", image="quay.io/nginx", labels={"env": "prod"}))
    store.create(base("web-3", image="docker.io/library/nginx:1.27", labels={"env": "dev"}))
    store.create(base("db-1", image="postgres"))
    got = store.list("labels.env==prod,image~=^docker.io/", "id==db-1", namespace="default")
    assert [c.id for c in got] == ["db-1", "web-1"]


@pytest.mark.parametrize(("filters", "message"), [
    pytest.param(("id==",),
                 "filters: parse error: [id==]: expected value or quoted: invalid argument: invalid argument",
                 id="missing-value"),
    pytest.param(("id==a", "id=b"),
                 'filters: parse error: [id >|=|< b]: unsupported operator "=": invalid argument: invalid argument',
                 id="second-of-several-bad"),
])
def test_list_rejects_bad_filters(store: Any, filters: tuple[str, ...], message: str) -> None:
    store.create(base())
    with pytest.raises(InvalidArgument) as ei:
        store.list(*filters)
    check_error(ei, Err(InvalidArgument, message))
    with pytest.raises(InvalidArgument) as ei:
        store.list_versions(*filters)
    check_error(ei, Err(InvalidArgument, message))


def test_list_versions_follow_every_change(store: Any) -> None:
    store.create(base("a"))
    store.create(base("b", labels={"x": "1"}))
    store.update(Container(id="b", labels={"x": "2"}), "labels.x")
    store.delete("a")
    store.create(base("a"))  # a new incarnation continues the stream: a higher version
    assert store.list_versions() == [(c.id, c.version) for c in store.list()] == [("a", 3), ("b", 2)]
    assert store.list_versions("labels.x==2") == [("b", 2)]
    assert store.list_versions(namespace="empty") == []
    with pytest.raises(FailedPrecondition):
        store.list_versions(namespace="")


def test_list_does_not_show_deleted(store: Any) -> None:
    store.create(base("a"))
    b = store.create(base("b"))
    store.delete("a")
    assert store.list() == [b]
    assert store.list("id==a") == []


# -- D1: extensions behave like labels ---------------------------------------------------------


def test_d1_extensions_path_replaces_the_whole_map(store: Any) -> None:
    store.create(base(extensions={"a": EXT_HELLO, "b": EXT_HELLO}))
    got = store.update(Container(id=ID, extensions={"b": EXT_WORLD, "c": EXT_FOO}), "extensions")
    assert got.extensions == {"b": EXT_WORLD, "c": EXT_FOO}
    assert store.get(ID).extensions == {"b": EXT_WORLD, "c": EXT_FOO}  # containerd 1.6 would show the union
    assert store.list()[0].extensions == {"b": EXT_WORLD, "c": EXT_FOO}


def test_d1_extensions_path_with_empty_map_clears(store: Any) -> None:
    store.create(base(extensions={"a": EXT_HELLO}))
    assert store.update(Container(id=ID), "extensions").extensions == {}
    assert store.get(ID).extensions == {}


def test_d1_full_replace_replaces_extensions(store: Any) -> None:
    store.create(base(extensions={"a": EXT_HELLO, "b": EXT_HELLO}))
    got = store.update(base(extensions={"c": EXT_FOO}))
    assert got.extensions == {"c": EXT_FOO}
    assert store.get(ID).extensions == {"c": EXT_FOO}
    store.update(base())
    assert store.get(ID).extensions == {}


def test_d1_extension_key_absent_from_request_deletes_it(store: Any) -> None:
    store.create(base(extensions={"a": EXT_HELLO, "b": EXT_HELLO}))
    got = store.update(Container(id=ID, extensions={"b": EXT_WORLD}), "extensions.a")
    assert got.extensions == {"b": EXT_HELLO}  # containerd 1.6 would store an empty Any under "a"
    assert store.get(ID).extensions == {"b": EXT_HELLO}


def test_d1_extension_key_absent_everywhere_is_noop(store: Any) -> None:
    created = store.create(base(extensions={"a": EXT_HELLO}))
    got = store.update(Container(id=ID), "extensions.zzz")
    assert got.extensions == {"a": EXT_HELLO}
    assert got.updated_at > created.updated_at


def test_d1_extension_key_sets_and_overwrites(store: Any) -> None:
    store.create(base(extensions={"a": EXT_HELLO}))
    store.update(Container(id=ID, extensions={"a": EXT_WORLD, "n.x": EXT_FOO}), "extensions.a", "extensions.n.x")
    assert store.get(ID).extensions == {"a": EXT_WORLD, "n.x": EXT_FOO}


def test_d1_empty_payload_is_a_value_not_a_deletion(store: Any) -> None:
    store.create(base(extensions={"a": EXT_HELLO}))
    store.update(Container(id=ID, extensions={"a": Payload()}), "extensions.a")
    assert store.get(ID).extensions == {"a": Payload()}


# -- D2: empty label key with a value is InvalidArgument ---------------------------------------


def _check_d2(ei: pytest.ExceptionInfo[StoreError], context: str) -> None:
    err = ei.value
    assert type(err) is InvalidArgument and err.code == "INVALID_ARGUMENT"
    msg = str(err)
    assert msg.startswith(f"{context}: ")
    assert "label key must not be empty" in msg
    assert msg.endswith(": invalid argument")


def test_d2_create_with_empty_label_key_is_invalid_and_creates_nothing(store: Any) -> None:
    with pytest.raises(StoreError) as ei:
        store.create(base(labels={"": "v", "a": "1"}), namespace="fresh")
    _check_d2(ei, "create container failed validation")
    assert_absent(store, ID, "fresh")


@pytest.mark.parametrize(("paths", "labels"), [
    pytest.param(("labels.",), {"": "v"}, id="labels-dot"),
    pytest.param(("labels",), {"": "v", "a": "2"}, id="labels"),
    pytest.param((), {"": "v"}, id="full-replace"),
])
def test_d2_update_with_empty_label_key_is_invalid(store: Any, paths: tuple[str, ...], labels: dict[str, str]) -> None:
    created = store.create(base(labels={"a": "1"}))
    with pytest.raises(StoreError) as ei:
        store.update(base(labels=labels), *paths)
    _check_d2(ei, "update failed validation")
    assert store.get(ID) == created


# -- D3: no printf mangling of % ----------------------------------------------------------------


def test_d3_percent_in_id_is_not_mangled(store: Any) -> None:
    with pytest.raises(InvalidArgument) as ei:
        store.create(base("a%d"))
    check_error(ei, Err(InvalidArgument, bad_id('"a%d"')))  # containerd 1.6: "a%!d(MISSING)"


def test_d3_percent_in_namespace_is_not_mangled(store: Any) -> None:
    with pytest.raises(InvalidArgument) as ei:
        store.get(ID, namespace="n%s")
    check_error(ei, ns_invalid('"n%s"'))


def test_d3_percent_in_not_found_and_path_messages(store: Any) -> None:
    store.create(base())
    with pytest.raises(NotFound) as ei:
        store.get("x%v")
    check_error(ei, Err(NotFound, 'container "x%v" in namespace "default": not found'))
    with pytest.raises(NotFound) as ei:
        store.delete("x%%d")
    check_error(ei, Err(NotFound, "container x%%d: not found"))
    with pytest.raises(InvalidArgument) as ei:
        store.update(Container(id=ID), "labels%d")
    check_error(ei, cannot_update("labels%d"))
    with pytest.raises(InvalidArgument) as ei:
        store.create(base("y", labels={"%d%s" + "k" * 4095: "v"}))
    check_error(ei, Err(InvalidArgument, label_too_big("%d%skkkkkk")))


# -- D5: sandbox -------------------------------------------------------------------------------


def test_d5_sandbox_is_stored_and_returned(store: Any) -> None:
    created = store.create(base(sandbox="sb"))
    assert created.sandbox == "sb"
    assert store.get(ID).sandbox == "sb"
    assert store.list()[0].sandbox == "sb"


@pytest.mark.parametrize("paths", [pytest.param(("sandbox",), id="alone"),
                                   pytest.param(("image", "sandbox"), id="after-a-good-path")])
def test_d5_sandbox_is_never_an_update_path(store: Any, paths: tuple[str, ...]) -> None:
    created = store.create(base(sandbox="sb"))
    with pytest.raises(InvalidArgument) as ei:
        store.update(Container(id=ID, sandbox="other", image="x"), *paths)
    check_error(ei, cannot_update("sandbox"))
    assert store.get(ID) == created


@pytest.mark.parametrize("sent", [pytest.param("other", id="different"), pytest.param("", id="omitted")])
def test_d5_full_replace_keeps_the_stored_sandbox(store: Any, sent: str) -> None:
    store.create(base(sandbox="sb", labels={"a": "1"}))
    got = store.update(base(sandbox=sent, labels={"b": "2"}))
    assert got.sandbox == "sb" and got.labels == {"b": "2"}
    assert store.get(ID).sandbox == "sb"


def test_d5_sandbox_in_request_ignored_with_paths(store: Any) -> None:
    store.create(base(sandbox="sb"))
    got = store.update(Container(id=ID, sandbox="other", image="x"), "image")
    assert got.sandbox == "sb"
    assert store.get(ID).sandbox == "sb"
