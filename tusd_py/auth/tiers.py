"""The tier table: what each kind of user may do.

A token's tier claim (``[auth] tier_claim``, default ``tier``) selects one of
:data:`TIERS`; a token without the claim is ``basic``. Limits come from
``[throttle] <tier>_<limit>``; 0 means unlimited (the ``admin`` default for
all three).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from tusd_py.core.config import Config
from tusd_py.core.models import Principal

TIERS: Final = ("basic", "premium", "admin")
DEFAULT_TIER: Final = "basic"


@dataclass(frozen=True, slots=True)
class Tier:
    """Limits of one tier; 0 = unlimited."""

    name: str
    max_size: int
    concurrency: int
    creations_per_minute: int


def tier_table(config: Config) -> dict[str, Tier]:
    """``{tier name: Tier}`` from ``[throttle]``."""
    t = config.throttle
    return {
        name: Tier(
            name=name,
            max_size=getattr(t, f"{name}_max_size"),
            concurrency=getattr(t, f"{name}_concurrency"),
            creations_per_minute=getattr(t, f"{name}_creations_per_minute"),
        )
        for name in TIERS
    }


def tier_of(table: dict[str, Tier], principal: Principal) -> Tier:
    """The tier of ``principal``; unknown names fall back to :data:`DEFAULT_TIER`.

    (The JWT authenticator refuses unknown tiers, so the fallback only
    matters for principals built elsewhere.)
    """
    return table.get(principal.tier) or table[DEFAULT_TIER]
