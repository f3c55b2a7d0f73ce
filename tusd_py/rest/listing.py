"""Listing of uploads (``GET <base_path>``) with opaque, insert-stable cursors.

Pages follow the state store's ``(created_at, id)`` order. The cursor is the
position of the last record returned, encoded as URL-safe base64 of a small
JSON array, so a client treats it as an opaque token; an upload created while
a client pages through is never returned twice and never shifts the records
after the cursor. The owner filter is applied by the server from the caller,
never taken from the cursor. Partial uploads of concatenations (bookkeeping of
parallel uploads, removed once their final is assembled) are left out unless
the query says ``include=partial``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass

from tusd_py.core import errors
from tusd_py.core.models import Principal, UploadInfo
from tusd_py.core.service import UploadService

#: Values the ``state`` filter accepts (the stored states).
STATE_FILTERS = ("uploading", "complete", "expired")
VISIBILITY_FILTERS = ("public", "private")
#: Values of ``include``: record kinds listed only when asked for.
INCLUDE_VALUES = ("partial",)


def encode_cursor(info: UploadInfo) -> str:
    """The cursor that continues after ``info``."""
    raw = json.dumps([1, info.created_at, info.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[float, str]:
    """The ``(created_at, id)`` position in ``token``; raises :class:`errors.InvalidQuery`."""
    bad = errors.InvalidQuery("cursor is not one this server handed out; start again without it")
    if not token or len(token) > 200:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        version, created_at, upload_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise bad from None
    if version != 1 or not isinstance(created_at, int | float) or not isinstance(upload_id, str):
        raise bad
    if isinstance(created_at, bool) or not math.isfinite(created_at):
        raise bad
    return float(created_at), upload_id


@dataclass(frozen=True, slots=True)
class ListQuery:
    """Validated listing parameters."""

    limit: int
    after: tuple[float, str] | None = None
    state: str | None = None
    visibility: str | None = None
    #: Partial uploads of concatenations are hidden unless ``include=partial``.
    include_partials: bool = False


def parse_query(args: dict[str, str], *, default_limit: int, max_limit: int) -> ListQuery:
    """``limit``, ``cursor``, ``state``, ``visibility`` and ``include`` from query arguments.

    Raises :class:`errors.InvalidQuery` naming the bad parameter."""
    limit = default_limit
    if "limit" in args:
        text = args["limit"]
        if not text.isdigit() or not (1 <= int(text) <= max_limit):
            raise errors.InvalidQuery(f"limit must be an integer from 1 to {max_limit}")
        limit = int(text)
    after = decode_cursor(args["cursor"]) if args.get("cursor") else None
    state = args.get("state") or None
    if state is not None and state not in STATE_FILTERS:
        raise errors.InvalidQuery(f"state must be one of {', '.join(STATE_FILTERS)}")
    visibility = args.get("visibility") or None
    if visibility is not None and visibility not in VISIBILITY_FILTERS:
        raise errors.InvalidQuery(f"visibility must be one of {', '.join(VISIBILITY_FILTERS)}")
    include = args.get("include") or ""
    if include and include not in INCLUDE_VALUES:
        raise errors.InvalidQuery(f"include must be one of {', '.join(INCLUDE_VALUES)}")
    return ListQuery(
        limit=limit, after=after, state=state, visibility=visibility, include_partials=include == "partial"
    )


async def list_page(
    service: UploadService, principal: Principal, query: ListQuery
) -> tuple[list[UploadInfo], str | None]:
    """One page of the uploads ``principal`` may see (admins: everyone's, see
    :meth:`~tusd_py.core.service.UploadService.list_uploads`) and the cursor
    of the next page (None on the last)."""
    rows = list(
        await service.list_uploads(
            principal,
            after=query.after,
            limit=query.limit + 1,
            state=query.state,
            visibility=query.visibility,
            include_partials=query.include_partials,
        )
    )
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return rows, (encode_cursor(rows[-1]) if more and rows else None)
