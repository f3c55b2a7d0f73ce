"""Who may: the 401/403 refusals of the error table (:mod:`tusd_py.core.errors`).

A self-contained branch of the :class:`~tusd_py.core.errors.TusError` tree —
no other error derives from these, and the upload core raises none of them
(authentication, download links and origins do, at the edge). Its place in the
tree, statuses and codes are documented with the rest of the table in the
docstring of :mod:`tusd_py.core.errors`.
"""

from __future__ import annotations

from collections.abc import Mapping

from tusd_py.core.errors import TusError


class AuthError(TusError):
    """Authentication or authorization failed."""

    status = 401
    code = "ERR_AUTH"
    default_message = "authentication required"


class Unauthenticated(AuthError):
    status = 401
    code = "ERR_UNAUTHENTICATED"
    default_message = "missing, invalid or expired bearer token"

    def __init__(self, message: str | None = None, *, headers: Mapping[str, str] | None = None) -> None:
        merged = {"WWW-Authenticate": 'Bearer realm="tusd-py"'}
        merged.update(headers or {})
        super().__init__(message, headers=merged)


class Forbidden(AuthError):
    status = 403
    code = "ERR_FORBIDDEN"
    default_message = "not allowed"


class LinkInvalid(Forbidden):
    code = "ERR_LINK_INVALID"
    default_message = "the download link's signature is invalid"


class LinkExpired(Forbidden):
    code = "ERR_LINK_EXPIRED"
    default_message = "the download link has expired; ask the owner for a new one"
