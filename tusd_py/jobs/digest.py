"""The ``sha256`` job: the whole upload's SHA-256, streamed from storage.

Local files are read block by block from disk, S3 objects by streaming the
object body; memory stays at one chunk. The result (``{"checksum":
"sha256:<hex>", "sha256", "bytes"}``) is what ``/index-status`` shows as
``checksum`` when the upload itself carried none (see :mod:`tusd_py.rest.status`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from tusd_py.jobs.records import JobRecord
from tusd_py.jobs.runner import PermanentJobError
from tusd_py.jobs.source import UploadSource


def sha256_job(job: JobRecord, source: UploadSource) -> dict[str, Any]:
    """Hash the stored bytes of ``job.file_id``."""
    info = source.upload(job.file_id)
    digest = hashlib.sha256()
    size = 0
    for chunk in source.chunks(info):
        digest.update(chunk)
        size += len(chunk)
    if size != info.length:
        raise PermanentJobError(f"storage holds {size} bytes, the upload records {info.length}")
    hexdigest = digest.hexdigest()
    return {"checksum": f"sha256:{hexdigest}", "sha256": hexdigest, "bytes": size}
