"""The ``Composer`` bundles the backends and derives what the server offers.

tusd's composer idea: storages opt into capabilities; the composer checks at
startup that each declared capability is really implemented, then computes
the advertised ``Tus-Extension`` list from what *every* configured storage
offers (an upload may land on any of them).
"""

from __future__ import annotations

from collections.abc import Mapping

from storage.base import CAPABILITY_PROTOCOLS, Capability, Storage, StoragePolicy
from tusd_py.locking.base import Locker
from tusd_py.state.base import StateStore


class Composer:
    """Storages, state store and locker of one server process."""

    def __init__(
        self,
        *,
        storages: Mapping[str, Storage],
        state: StateStore,
        locker: Locker,
        policy: StoragePolicy | None = None,
    ) -> None:
        if not storages:
            raise ValueError("at least one storage is required")
        for name, storage in storages.items():
            for capability in storage.capabilities:
                proto = CAPABILITY_PROTOCOLS.get(capability)
                if proto is not None and not isinstance(storage, proto):
                    raise TypeError(f"storage {name!r} declares {capability.value} but does not implement it")
        self.storages = dict(storages)
        self.state = state
        self.locker = locker
        first = next(iter(self.storages))
        self._policy: StoragePolicy = policy or (lambda _length: first)

    def storage(self, name: str) -> Storage:
        """The storage called ``name`` (as recorded on an upload)."""
        try:
            return self.storages[name]
        except KeyError:
            raise LookupError(f"upload stored on unknown storage {name!r}") from None

    def choose(self, length: int | None) -> str:
        """The storage name for a new upload of ``length`` bytes."""
        return self._policy(length)

    def has(self, capability: Capability) -> bool:
        """True if every storage offers ``capability``."""
        return all(capability in s.capabilities for s in self.storages.values())

    def tus_extensions(self) -> list[str]:
        """The ``Tus-Extension`` list, most important first."""
        extensions = ["creation", "creation-with-upload"]
        if self.has(Capability.DECLARE_LENGTH):
            extensions.append("creation-defer-length")
        extensions.append("expiration")
        extensions.append("checksum")
        if self.has(Capability.TERMINATE):
            extensions.append("termination")
        if self.has(Capability.CONCATENATE):
            extensions += ["concatenation", "concatenation-unfinished"]
        return extensions

    def describe(self) -> dict[str, object]:
        """A summary for logs and ``check-config``."""
        return {
            "storages": {n: sorted(c.value for c in s.capabilities) for n, s in self.storages.items()},
            "state": type(self.state).__name__,
            "locker": type(self.locker).__name__,
            "extensions": self.tus_extensions(),
        }

    async def close(self) -> None:
        """Close storages, locker and state store (in that order)."""
        for storage in self.storages.values():
            await storage.close()
        await self.locker.close()
        await self.state.close()
