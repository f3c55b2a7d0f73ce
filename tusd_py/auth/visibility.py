"""Upload visibility: ``private`` (default) or ``public`` (downloadable without a token).

Set at creation with the ``visibility`` metadata key, changed later by the
owner with ``PATCH <base_path>{id}/visibility`` (see :mod:`handlers.links`).
"""

from __future__ import annotations

from typing import Final

from tusd_py.core import errors
from tusd_py.core.models import Principal, UploadInfo
from tusd_py.core.service import UploadService

VISIBILITIES: Final = ("private", "public")


async def set_visibility(
    service: UploadService, principal: Principal, upload_id: str, visibility: object
) -> UploadInfo:
    """Change the visibility of ``principal``'s upload.

    Raises :class:`errors.InvalidBody` for a value other than ``private`` /
    ``public``, :class:`errors.UploadNotFound` when the upload is unknown or
    belongs to someone else (admins may change any), :class:`errors.UploadGone`
    when it expired.
    """
    if visibility not in VISIBILITIES:
        raise errors.InvalidBody(f"visibility must be one of {', '.join(VISIBILITIES)}")
    info = await service.get(principal, upload_id)
    if info.visibility == visibility:
        return info
    return await service.state.update(info.id, {"visibility": visibility})
