"""``AppContext``: everything handlers need, handed over via ``initialize``.

Handlers reach uploads through :attr:`AppContext.service` only; the
:attr:`AppContext.composer` beside it serves the operations code (health,
reconcile, shutdown), which must see each backend by name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tusd_py.auth.authenticator import Authenticator
from tusd_py.auth.links import LinkSigner
from tusd_py.core.composer import Composer
from tusd_py.core.config import Config
from tusd_py.core.service import UploadService
from tusd_py.events.live.hub import LiveHub
from tusd_py.ops.lifecycle import Lifecycle
from tusd_py.ops.metrics import Metrics
from tusd_py.throttle.base import Guard, NullGuard

if TYPE_CHECKING:
    from tusd_py.jobs.system import JobSystem


@dataclass
class AppContext:
    """Dependencies of the HTTP layer (built once per process by the server)."""

    config: Config
    #: The only way handlers reach uploads (``.importlinter`` contract
    #: ``handlers-use-the-service``; tests/unit/test_handlers_facade.py).
    service: UploadService
    #: The backends, for operations only: readiness probes ping the state store
    #: and each storage (:mod:`tusd_py.ops.health`), reconcile corrects offsets
    #: under the locker and sweeps each storage (:mod:`tusd_py.ops.reconcile`),
    #: and :meth:`aclose` closes them. Handlers never touch it.
    composer: Composer
    authenticator: Authenticator
    guard: Guard = field(default_factory=NullGuard)
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    #: Prometheus series of this process (``/metrics``).
    metrics: Metrics = field(default_factory=Metrics)
    #: Extra readiness checks by name (``/readyz``), besides state and storages.
    probes: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)
    #: Signs and verifies download links (None: the link routes answer 404).
    links: LinkSigner | None = None
    #: Extra resources (shared clients) closed last, in order.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    #: Live events of this process (``/events``, SSE; see :mod:`tusd_py.events.live`).
    live: LiveHub = field(default_factory=LiveHub)
    #: The job queue of this process (SPEC §7), set by ``build_context``.
    jobs: JobSystem | None = None

    def __post_init__(self) -> None:
        self.metrics.track(self.lifecycle)

    async def aclose(self) -> None:
        """Close guard, backends and extra resources; idempotent enough to call once."""
        await self.guard.close()
        await self.composer.close()
        for close in self.closers:
            with contextlib.suppress(Exception):
                await close()
