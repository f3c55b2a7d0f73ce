"""The one error table of tusd-py.

Every failure a client can see is a :class:`TusError` subclass that declares its
HTTP ``status``, a stable machine ``code`` and a default human ``message`` once,
as class attributes. Handlers render them as
``{"error": {"code": ..., "message": ...}}`` (an empty body for HEAD).

Exception tree::

    TusError                         500 ERR_INTERNAL
    ├── ProtocolError                4xx caused by the request itself
    │   ├── UnsupportedVersion       412  (+ Tus-Version)
    │   ├── InvalidContentType       415
    │   ├── UnsupportedMediaType     415  (refused by content inspection)
    │   ├── InvalidHeader            400
    │   │   ├── InvalidOffset
    │   │   ├── InvalidLength
    │   │   │   └── InconsistentLength   (IETF draft: lengths that disagree)
    │   │   ├── InvalidMetadata
    │   │   ├── InvalidConcat
    │   │   ├── InvalidChecksum
    │   │   ├── UnsupportedChecksumAlgorithm
    │   │   ├── InvalidRange
    │   │   └── InvalidIdempotencyKey
    │   ├── OffsetMismatch           409
    │   ├── UploadNotFound           404
    │   ├── UploadGone               410
    │   ├── ModifyFinal              403
    │   ├── MaxSizeExceeded          413
    │   ├── UploadSizeExceeded       413
    │   ├── ChecksumMismatch         460
    │   ├── UploadNotFinished        400
    │   ├── UploadIncomplete         409  (GET before the last byte)
    │   ├── UploadCompleted          400  (IETF draft append to a complete upload)
    │   ├── RangeNotSatisfiable      416  (+ Content-Range)
    │   ├── MethodNotAllowed         405
    │   ├── UploadInterrupted        400
    │   ├── HeadersTooLarge          431
    │   ├── InvalidBody              400  (JSON bodies of the link/visibility routes)
    │   ├── NotFound                 404  (no such route)
    │   ├── InvalidMultipart         400  (POST /index form bodies)
    │   ├── IdempotencyKeyReused     422  (POST /index key sent with another request)
    │   ├── InvalidQuery             400  (listing parameters, cursors)
    │   └── HookRejected             4xx  (pre-create hook said no: the receiver's status)
    ├── AuthError                    (in tusd_py.core.auth_errors)
    │   ├── Unauthenticated          401  (+ WWW-Authenticate: Bearer)
    │   └── Forbidden                403
    │       ├── LinkInvalid          403  (signed link tampered with)
    │       └── LinkExpired          403
    ├── LimitError                   (+ Retry-After)
    │   ├── RateLimited              429
    │   │   └── ConcurrencyLimited   429  (per-user stream slots)
    │   ├── UploadLocked             423
    │   ├── LockTimeout              423
    │   ├── ServerBusy               503
    │   ├── ServerShutdown           503
    │   ├── HookUnavailable          503  (pre-create hook unreachable, on_error = reject)
    │   ├── StorageUnavailable       503  (also a BackendError)
    │   └── StateStoreError          503  (also a BackendError)
    ├── ReadTimeout                  500  (clients retry 5xx, as tusd)
    ├── ConnectionReset              500
    └── BackendError
        ├── StorageError             500
        ├── StorageUnavailable       503
        ├── InsufficientStorage      507
        └── StateStoreError          503

Foreign exceptions (OSError, sqlite3, botocore, redis) are translated at the
backend boundary by the ``map_*_errors`` helpers of each backend; anything that
escapes untranslated is rendered as ``ERR_INTERNAL`` and logged with a stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar


class TusError(Exception):
    """Root of every error a client may see.

    Subclasses only set class attributes. ``message`` may be overridden per
    instance; ``headers`` carries extra response headers (e.g. Retry-After).
    """

    status: ClassVar[int] = 500
    code: ClassVar[str] = "ERR_INTERNAL"
    default_message: ClassVar[str] = "internal server error"

    def __init__(self, message: str | None = None, *, headers: Mapping[str, str] | None = None) -> None:
        self.message = message or self.default_message
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(self.message)

    def to_dict(self) -> dict[str, dict[str, str]]:
        """The JSON error body."""
        return {"error": {"code": self.code, "message": self.message}}


# --- protocol (4xx caused by the request) -----------------------------------


class ProtocolError(TusError):
    status = 400
    code = "ERR_BAD_REQUEST"
    default_message = "bad request"


class UnsupportedVersion(ProtocolError):
    status = 412
    code = "ERR_UNSUPPORTED_VERSION"
    default_message = "missing or unsupported Tus-Resumable header; this server speaks tus 1.0.0"


class InvalidContentType(ProtocolError):
    status = 415
    code = "ERR_INVALID_CONTENT_TYPE"
    default_message = "PATCH requests must use Content-Type: application/offset+octet-stream"


class UnsupportedMediaType(ProtocolError):
    status = 415
    code = "ERR_FILE_TYPE_NOT_ALLOWED"
    default_message = "this file type is not allowed"


class InvalidHeader(ProtocolError):
    status = 400
    code = "ERR_INVALID_HEADER"
    default_message = "a request header is malformed"


class InvalidOffset(InvalidHeader):
    code = "ERR_INVALID_OFFSET"
    default_message = "Upload-Offset must be a non-negative integer"


class InvalidLength(InvalidHeader):
    code = "ERR_INVALID_UPLOAD_LENGTH"
    default_message = "Upload-Length must be a non-negative integer"


class InconsistentLength(InvalidLength):
    code = "ERR_INCONSISTENT_LENGTH"
    default_message = "the upload's length, offset and completeness disagree"


class InvalidMetadata(InvalidHeader):
    code = "ERR_INVALID_METADATA"
    default_message = "Upload-Metadata must be comma-separated 'key base64value' pairs"


class InvalidConcat(InvalidHeader):
    code = "ERR_INVALID_CONCAT"
    default_message = "Upload-Concat must be 'partial' or 'final;<url> <url> ...'"


class InvalidChecksum(InvalidHeader):
    code = "ERR_INVALID_CHECKSUM"
    default_message = "Upload-Checksum must be '<algorithm> <base64 digest>'"


class UnsupportedChecksumAlgorithm(InvalidHeader):
    code = "ERR_UNSUPPORTED_CHECKSUM_ALGORITHM"
    default_message = "checksum algorithm not supported"


class InvalidRange(InvalidHeader):
    code = "ERR_INVALID_RANGE"
    default_message = "Range must be a single 'bytes=start-end' range"


class OffsetMismatch(ProtocolError):
    status = 409
    code = "ERR_MISMATCHED_OFFSET"
    default_message = "Upload-Offset does not match the upload's current offset"


class UploadNotFound(ProtocolError):
    status = 404
    code = "ERR_UPLOAD_NOT_FOUND"
    default_message = "upload not found"


class UploadGone(ProtocolError):
    status = 410
    code = "ERR_UPLOAD_GONE"
    default_message = "upload expired and was removed"


class ModifyFinal(ProtocolError):
    status = 403
    code = "ERR_MODIFY_FINAL"
    default_message = "a final upload of a concatenation cannot be modified"


class MaxSizeExceeded(ProtocolError):
    status = 413
    code = "ERR_MAX_SIZE_EXCEEDED"
    default_message = "upload exceeds the maximum size"


class UploadSizeExceeded(ProtocolError):
    status = 413
    code = "ERR_UPLOAD_SIZE_EXCEEDED"
    default_message = "request body would exceed the upload's length"


class ChecksumMismatch(ProtocolError):
    status = 460
    code = "ERR_CHECKSUM_MISMATCH"
    default_message = "checksum mismatch; the chunk was discarded"


class UploadNotFinished(ProtocolError):
    status = 400
    code = "ERR_UPLOAD_NOT_FINISHED"
    default_message = "a partial upload in the concatenation is not finished"


class UploadIncomplete(ProtocolError):
    status = 409
    code = "ERR_UPLOAD_INCOMPLETE"
    default_message = "upload is not complete yet"


class UploadCompleted(ProtocolError):
    status = 400
    code = "ERR_UPLOAD_COMPLETED"
    default_message = "the upload is already complete; nothing more can be appended"


class RangeNotSatisfiable(ProtocolError):
    status = 416
    code = "ERR_RANGE_NOT_SATISFIABLE"
    default_message = "requested range not satisfiable"


class MethodNotAllowed(ProtocolError):
    status = 405
    code = "ERR_METHOD_NOT_ALLOWED"
    default_message = "method not allowed on this resource"


class UploadInterrupted(ProtocolError):
    status = 400
    code = "ERR_UPLOAD_INTERRUPTED"
    default_message = "upload interrupted by a newer request for the same upload"


class HeadersTooLarge(ProtocolError):
    status = 431
    code = "ERR_HEADERS_TOO_LARGE"
    default_message = "the request's header block is too large"


class InvalidBody(ProtocolError):
    status = 400
    code = "ERR_INVALID_BODY"
    default_message = "the request body is not the JSON this route expects"


class NotFound(ProtocolError):
    status = 404
    code = "ERR_NOT_FOUND"
    default_message = "no such route"


class InvalidMultipart(ProtocolError):
    status = 400
    code = "ERR_INVALID_MULTIPART"
    default_message = "malformed multipart/form-data body"


class InvalidQuery(ProtocolError):
    status = 400
    code = "ERR_INVALID_QUERY"
    default_message = "invalid query parameter"


class HookRejected(ProtocolError):
    """The pre-create hook refused the upload; ``status`` is the receiver's 4xx."""

    status = 403
    code = "ERR_HOOK_REJECTED"
    default_message = "the pre-create hook refused this upload"

    def __init__(self, message: str | None = None, *, status: int = 403) -> None:
        super().__init__(message)
        self.status = status  # type: ignore[misc]


class InvalidIdempotencyKey(InvalidHeader):
    code = "ERR_INVALID_IDEMPOTENCY_KEY"
    default_message = "Idempotency-Key must be 1 to 255 printable ASCII characters"


class IdempotencyKeyReused(ProtocolError):
    """draft-ietf-httpapi-idempotency-key-header: a key reused with a different request."""

    status = 422
    code = "ERR_IDEMPOTENCY_KEY_REUSED"
    default_message = (
        "this Idempotency-Key was already used for a different request (other length, "
        "filename, content type or metadata); send a new key for a new upload"
    )


# --- limits (carry Retry-After) ----------------------------------------------


class LimitError(TusError):
    status = 429
    code = "ERR_LIMIT"
    default_message = "limit reached"

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: float = 1.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        merged = {"Retry-After": str(max(1, int(retry_after + 0.999)))}
        merged.update(headers or {})
        super().__init__(message, headers=merged)


class RateLimited(LimitError):
    status = 429
    code = "ERR_RATE_LIMITED"
    default_message = "too many requests"


class ConcurrencyLimited(RateLimited):
    code = "ERR_CONCURRENCY_LIMITED"
    default_message = "too many uploads in progress for this user"


class UploadLocked(LimitError):
    status = 423
    code = "ERR_UPLOAD_LOCKED"
    default_message = "upload is locked by another request"


class LockTimeout(LimitError):
    status = 423
    code = "ERR_LOCK_TIMEOUT"
    default_message = "timed out waiting for the upload's lock; retry later"


class ServerBusy(LimitError):
    status = 503
    code = "ERR_SERVER_BUSY"
    default_message = "server is at its limit of concurrent uploads; retry later"


class ServerShutdown(LimitError):
    status = 503
    code = "ERR_SERVER_SHUTDOWN"
    default_message = "server is shutting down; retry shortly"


class HookUnavailable(LimitError):
    status = 503
    code = "ERR_HOOK_UNAVAILABLE"
    default_message = "the pre-create hook did not answer; retry later"


# --- network -------------------------------------------------------------------


class ReadTimeout(TusError):
    status = 500
    code = "ERR_READ_TIMEOUT"
    default_message = "timed out reading the request body; the bytes received were kept"


class ConnectionReset(TusError):
    status = 500
    code = "ERR_CONNECTION_RESET"
    default_message = "connection reset while reading the request body"


# --- backends ------------------------------------------------------------------


class BackendError(TusError):
    status = 500
    code = "ERR_BACKEND"
    default_message = "backend failure"


class StorageError(BackendError):
    status = 500
    code = "ERR_STORAGE"
    default_message = "storage failure"


class StorageUnavailable(LimitError, BackendError):
    status = 503
    code = "ERR_STORAGE_UNAVAILABLE"
    default_message = "storage is unreachable; retry later"


class InsufficientStorage(BackendError):
    status = 507
    code = "ERR_INSUFFICIENT_STORAGE"
    default_message = "not enough disk space to store the upload"


class StateStoreError(LimitError, BackendError):
    status = 503
    code = "ERR_STATE_STORE"
    default_message = "state store is unreachable; retry later"


def all_error_classes() -> list[type[TusError]]:
    """Every TusError class defined so far, for the table test and documentation
    (the auth branch once :mod:`tusd_py.core.auth_errors` is imported, as it is
    by every server; this module cannot import it without an import cycle)."""
    seen: list[type[TusError]] = []
    stack: list[type[TusError]] = [TusError]
    while stack:
        cls = stack.pop()
        if cls not in seen:
            seen.append(cls)
            stack.extend(cls.__subclasses__())
    return seen
