"""Errors of the ``tusd-py`` client commands and their exit codes.

Exception tree::

    ClientError                  exit 1   (local problem: unreadable file, bad state)
    ├── TransportError                    connection refused/reset, timeout, bad HTTP
    │                                     (retried; never escapes the retry loop alone)
    ├── HttpStatusError                   the server answered a non-success status
    │   │                                 (``status``, ``code``, ``message``, ``retry_after``)
    │   └── UploadMissing                 404/410 for an upload we were resuming
    ├── PermanentError           exit 3/4 a status that retrying cannot fix; ``str()``
    │                                     names the status, the server's code and message
    │                                     and what to do
    └── GaveUp                   exit 5   retries exhausted; names the last failure
    UsageError                   exit 2   the arguments do not say what to do
    Cancelled                    exit 130 (BaseException: another part failed / Ctrl-C)
    Terminated                   exit 143 (BaseException: SIGTERM arrived)

Foreign exceptions (``OSError``, ``http.client.HTTPException``) are translated
into :class:`TransportError` by the transport, at the boundary.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Exit codes of ``upload``/``status``/``ls``/``download`` (documented in README).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_REJECTED = 4
EXIT_GAVE_UP = 5
EXIT_INTERRUPTED = 130
#: 128 + SIGTERM, what a shell reports for a process killed by it.
EXIT_TERMINATED = 143

#: What a person can do about each permanent status.
_ADVICE: Mapping[int, str] = {
    400: "the server refused the request as malformed; check --metadata values and the server's version",
    401: (
        "pass a valid token with --token or the TUSD_PY_TOKEN environment variable "
        "(mint one with `tusd-py token --user NAME`); the token may have expired"
    ),
    403: "the token is valid but not allowed to do this; use a token of the upload's owner or a higher tier",
    404: "check --url: it must be the server's upload collection, e.g. http://HOST:8080/files/",
    405: "the server does not allow this method here; check --url and that the feature is enabled",
    410: "the upload expired on the server; run the command again to start a new upload",
    412: "the server does not speak tus 1.0.0; check --url",
    413: (
        "the file is larger than the server accepts; "
        "ask the operator to raise the limit or use another server"
    ),
    415: "the server does not accept this file type (or this request's content type)",
}


#: Advice for a 404/410 on an upload's own URL (not on the collection).
MISSING_UPLOAD_ADVICE = (
    "the server has no such upload: check the id; it may have expired, been deleted, "
    "or belong to another user"
)


class ClientError(Exception):
    """A failure of a client command; ``exit_code`` is what the process returns."""

    exit_code: int = EXIT_FAILURE


class UsageError(ClientError):
    """The command line does not say what to do (like an argparse error)."""

    exit_code = EXIT_USAGE


class TransportError(ClientError):
    """The request did not get an HTTP response (network error or timeout).

    ``sent`` is how many body bytes were handed to the socket before it failed.
    """

    def __init__(self, message: str, *, sent: int = 0) -> None:
        super().__init__(message)
        self.sent = sent


class HttpStatusError(ClientError):
    """The server answered ``status``; ``code``/``message`` come from its JSON error body."""

    def __init__(
        self,
        status: int,
        *,
        code: str | None = None,
        message: str | None = None,
        retry_after: float | None = None,
        method: str = "",
        url: str = "",
        sent: int = 0,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.method = method
        self.url = url
        self.sent = sent
        super().__init__(self.describe())

    def describe(self) -> str:
        """``HTTP 413 ERR_MAX_SIZE_EXCEEDED: upload of ... (POST URL)``."""
        text = f"HTTP {self.status}"
        if self.code:
            text += f" {self.code}"
        if self.message:
            text += f": {self.message}"
        if self.method:
            text += f" ({self.method} {self.url})"
        return text


class UploadMissing(HttpStatusError):
    """A stored upload URL answered 404/410: it expired or was removed."""


class PermanentError(ClientError):
    """A failure retrying cannot fix; the message says what to do."""

    def __init__(
        self,
        message: str,
        *,
        exit_code: int = EXIT_REJECTED,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.status = status
        self.code = code

    @classmethod
    def from_status(cls, error: HttpStatusError, what: str, advice: str | None = None) -> PermanentError:
        """``what`` failed with ``error``: message with status, server code/message and advice
        (``advice`` overrides the default one for the status)."""
        advice = advice or _ADVICE.get(error.status, "see the server's message above")
        exit_code = EXIT_AUTH if error.status in (401, 403) else EXIT_REJECTED
        return cls(
            f"{what} failed: {error.describe()}. What to do: {advice}.",
            exit_code=exit_code,
            status=error.status,
            code=error.code,
        )


class GaveUp(ClientError):
    """Every retry failed; the message names the last failure."""

    exit_code = EXIT_GAVE_UP


class Cancelled(BaseException):  # a control-flow signal, like KeyboardInterrupt
    """Work was cancelled (another part failed, or the user interrupted)."""


class Terminated(BaseException):  # raised in the main thread by the SIGTERM handler
    """SIGTERM arrived: stop like Ctrl-C (resume hint), but exit 143."""
