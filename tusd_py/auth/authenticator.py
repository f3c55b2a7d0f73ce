"""The ``Authenticator`` seam: request headers → :class:`Principal` or None.

``None`` means anonymous; handlers that need a user then answer 401 with
``WWW-Authenticate: Bearer``. An authenticator raises
:class:`tusd_py.core.auth_errors.Unauthenticated` for a token that is present but bad.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from tusd_py.core.config import Config
from tusd_py.core.models import Principal

#: The single user of a server started with ``--no-auth``.
LOCAL_PRINCIPAL = Principal(user="local", tier="admin")


@runtime_checkable
class Authenticator(Protocol):
    """Maps request headers to the caller."""

    def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        """The principal of a request, None if it carries no credentials.

        Raises :class:`tusd_py.core.auth_errors.Unauthenticated` for invalid ones.
        """


class NoAuthAuthenticator:
    """Every request is :data:`LOCAL_PRINCIPAL` (``--no-auth`` on loopback)."""

    def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        return LOCAL_PRINCIPAL


def build_authenticator(config: Config) -> Authenticator:
    """The authenticator selected by ``[auth]``: JWT (see :mod:`tusd_py.auth.tokens`)
    unless auth is disabled. Raises :class:`tusd_py.core.config.ConfigError` when
    the verification key cannot be loaded. PyJWT is loaded only when auth is on."""
    if not config.auth.enabled:
        return NoAuthAuthenticator()
    from tusd_py.auth.tokens import JWTAuthenticator

    return JWTAuthenticator.from_config(config)
