"""Byte storage backends and the factory that picks them from config."""

from __future__ import annotations

from storage.base import Capability, ChunkWriter, Storage, StoragePolicy
from storage.local import LocalStorage
from tusd_py.config import Config
from tusd_py.state.base import StateStore


def build_storages(config: Config, state: StateStore) -> tuple[dict[str, Storage], StoragePolicy]:
    """``({name: storage}, policy)`` for the configured backends (local always)."""
    storages: dict[str, Storage] = {"disk": LocalStorage(config.data_dir, config.local.fsync)}

    def policy(length: int | None) -> str:
        return "disk"

    return storages, policy


__all__ = ["Capability", "ChunkWriter", "Storage", "build_storages"]
