"""How ``Store.update`` merges a request into a stored record (containerd §6.2).

No paths means a full replace: the request must repeat the stored ``snapshotter``
and ``runtime.name`` (they are immutable), and then behaves as the paths
``labels, spec, extensions, image, snapshotkey``. Paths are applied one by one,
in the order given; later paths win.

=====================  =====================================================
path                   effect
=====================  =====================================================
``labels``             replace the whole label map
``labels.<key>``       copy the request's label ``<key>``; absent means delete
``extensions``         replace the whole extension map (D1)
``extensions.<key>``   copy the request's extension; absent means delete (D1)
``image``              replace the image ("" clears it)
``spec``               replace the spec (None then fails validation)
``snapshotkey``        replace the snapshot key ("" clears it)
anything else          ``InvalidArgument``: cannot update "<path>" field on "<id>"
=====================  =====================================================
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidArgument
from .model import Container, Payload, Runtime
from .validation import check_record, drop_empty_labels, go_quote

__all__ = ["FULL_REPLACE_PATHS", "merge_update"]

FULL_REPLACE_PATHS = ("labels", "spec", "extensions", "image", "snapshotkey")


def merge_update(current: Container, request: Container, fieldpaths: Sequence[str]) -> Container:
    """Return the record ``current`` becomes when ``request`` is applied along ``fieldpaths``.

    Raises ``InvalidArgument`` for an immutable field changed by a full replace,
    a path that cannot be updated, or a merged record that fails validation.
    Timestamps and version are left as in ``current``: the aggregate sets them.
    """
    if not isinstance(request.runtime, Runtime):
        raise InvalidArgument(
            f"container.Runtime must be a Runtime, not {type(request.runtime).__name__}: invalid argument")
    paths = list(fieldpaths)
    for p in paths:
        if not isinstance(p, str):
            raise InvalidArgument(
                f"field paths must be strings, not {type(p).__name__}: invalid argument"
            )
    if not paths:
        if request.snapshotter != current.snapshotter:
            raise InvalidArgument("container.Snapshotter field is immutable: invalid argument")
        if request.runtime.name != current.runtime.name:
            raise InvalidArgument("container.Runtime.Name field is immutable: invalid argument")
        paths = list(FULL_REPLACE_PATHS)

    labels = dict(current.labels)
    extensions = dict(current.extensions)
    image, spec, snapshot_key = current.image, current.spec, current.snapshot_key

    for path in paths:
        if path == "labels":
            labels = dict(request.labels)
        elif path.startswith("labels."):
            # An absent label copies as "": validated like any label (so a 4097-byte
            # key fails even though it would be dropped), then dropped as empty.
            key = path[len("labels."):]
            labels[key] = request.labels.get(key, "")
        elif path == "extensions":
            extensions = dict(request.extensions)
        elif path.startswith("extensions."):
            key = path[len("extensions."):]
            if key == "":
                # As containerd: stored under "", so the merged record fails validation
                # (after any later bad path has been reported).
                extensions[""] = request.extensions.get("", Payload())
            elif key in request.extensions:
                extensions[key] = request.extensions[key]
            else:
                extensions.pop(key, None)  # D1: absence deletes, as for labels
        elif path == "image":
            image = request.image
        elif path == "spec":
            spec = request.spec
        elif path == "snapshotkey":
            snapshot_key = request.snapshot_key
        else:
            raise InvalidArgument(
                f"cannot update {go_quote(path)} field on {go_quote(current.id)}: invalid argument"
            )

    # Records built from the fields (``Container.trusted``), not through ``__init__`` again: the
    # maps are this function's own copies, the rest ``current``'s and the request's values,
    # which ``check_record`` checks next.
    merged = Container.trusted(**{**current.__dict__, "labels": labels, "extensions": extensions, "image": image,
                                  "spec": spec, "snapshot_key": snapshot_key})
    check_record(merged, "update failed validation")
    return Container.trusted(**{**merged.__dict__, "labels": drop_empty_labels(labels)})
