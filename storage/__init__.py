"""Byte storage backends and the factory that picks them from config."""

from __future__ import annotations

from storage.base import Capability, ChunkWriter, PartsLedger, Storage, StoragePolicy
from storage.local import LocalStorage
from tusd_py.core.config import Config


def build_storages(config: Config, ledger: PartsLedger) -> tuple[dict[str, Storage], StoragePolicy]:
    """``({name: storage}, policy)`` for the configured backends (local always).

    ``ledger`` is where the S3 backend records its parts (the state store
    implements it; the backend reaches nothing else of the store through it).

    With an S3 bucket configured, uploads longer than ``s3.threshold`` and
    deferred-length uploads (which start on disk and switch past the
    threshold) go to ``"s3"``; everything else stays on ``"disk"``.
    """
    storages: dict[str, Storage] = {"disk": LocalStorage(config.data_dir, config.local.fsync)}
    if not config.s3.bucket:
        return storages, lambda _length: "disk"
    from storage.s3 import S3Storage  # boto3 costs ~10 MiB of RSS: loaded only when used

    storages["s3"] = S3Storage(config, ledger)
    threshold = config.s3.threshold

    def policy(length: int | None) -> str:
        return "s3" if length is None or length > threshold else "disk"

    return storages, policy


__all__ = ["Capability", "ChunkWriter", "Storage", "build_storages"]
