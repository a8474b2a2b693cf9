"""The one place where errors become gRPC status codes.

A ``ctrledger.StoreError`` already names its gRPC code (``.code``: ``NOT_FOUND``,
``ALREADY_EXISTS``, ``INVALID_ARGUMENT``, ``FAILED_PRECONDITION``, ``ABORTED``,
``UNAVAILABLE``, ``UNKNOWN``); its message goes out unchanged, so a containerd client sees
containerd's text. :class:`WireError` is the server's own refusal of a request it cannot
translate (a malformed ``Any``, an oversized header): it carries its code and message the
same way. Anything else escaping a handler is a bug: ``INTERNAL``, with the exception's type
named and no traceback on the wire.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import message

import ctrledger

__all__ = ["WireError", "decoding", "guarded", "guarded_stream", "status_of"]

log = logging.getLogger("ctrledger.server")
Req = TypeVar("Req")
Resp = TypeVar("Resp")


class WireError(Exception):
    """A request the server refuses before the store sees it."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def status_of(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC code and message of an error raised while serving a call."""
    if isinstance(error, ctrledger.StoreError):
        return getattr(grpc.StatusCode, error.code, grpc.StatusCode.UNKNOWN), error.message
    if isinstance(error, WireError):
        return error.code, error.message
    return grpc.StatusCode.INTERNAL, f"internal error ({type(error).__name__}); see the server's log"


def _abort(context: grpc.ServicerContext, error: BaseException) -> NoReturn:
    code, message = status_of(error)
    if code is grpc.StatusCode.INTERNAL:
        log.exception("unexpected error serving a call", exc_info=error)
    context.abort(code, message)
    raise AssertionError("unreachable")  # pragma: no cover - abort raises


def guarded(fn: Callable[[Req, grpc.ServicerContext], Resp]) -> Callable[[Req, grpc.ServicerContext], Resp]:
    """A unary handler whose errors are translated by :func:`status_of`."""

    @functools.wraps(fn)
    def handler(request: Req, context: grpc.ServicerContext) -> Resp:
        try:
            return fn(request, context)
        except Exception as e:  # noqa: BLE001 - the boundary: every error becomes a status
            _abort(context, e)

    return handler


def guarded_stream(
    fn: Callable[[Req, grpc.ServicerContext], Iterator[Resp]],
) -> Callable[[Req, grpc.ServicerContext], Iterator[Resp]]:
    """A server-streaming handler whose errors (before or during the stream) are translated."""

    @functools.wraps(fn)
    def handler(request: Req, context: grpc.ServicerContext) -> Iterator[Resp]:
        try:
            yield from fn(request, context)
        except Exception as e:  # noqa: BLE001 - the boundary
            if not context.is_active():
                return  # the client went away: nothing to tell it
            _abort(context, e)

    return handler


def decoding(
    cls: Any, fn: Callable[[Any, grpc.ServicerContext], Resp],
) -> Callable[[bytes, grpc.ServicerContext], Resp]:
    """``fn`` taking the raw request bytes, decoded as ``cls``; undecodable bytes are INVALID_ARGUMENT."""

    def handler(raw: bytes, context: grpc.ServicerContext) -> Resp:
        try:
            request = cls.FromString(raw)
        except message.DecodeError as e:
            raise WireError(grpc.StatusCode.INVALID_ARGUMENT,
                            f"cannot decode the {cls.DESCRIPTOR.full_name} request: {e}: invalid argument") from None
        return fn(request, context)

    return handler

