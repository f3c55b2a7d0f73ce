"""A header-based :class:`~tusd_py.auth.authenticator.Authenticator` for HTTP tests.

``X-Test-User: alice`` authenticates as ``alice`` (tier ``basic``; the user
``root`` is an admin); ``X-Test-User: !bad`` is an invalid credential (401);
no header is anonymous. It stands in for JWT auth, which has its own tests.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest
import tornado.ioloop

from tusd_py.cli.server import build_context
from tusd_py.core import auth_errors
from tusd_py.core.config import Config
from tusd_py.core.models import Principal
from tusd_py.ops.context import AppContext

USER_HEADER = "X-Test-User"


class HeaderAuthenticator:
    def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        user = headers.get(USER_HEADER)
        if user is None:
            return None
        if user.startswith("!"):
            raise auth_errors.Unauthenticated("invalid test credential")
        return Principal(user=user, tier="admin" if user == "root" else "basic")


def as_user(user: str) -> dict[str, str]:
    return {USER_HEADER: user}


@pytest.fixture
def ctx(io_loop: tornado.ioloop.IOLoop, tus_config: Config) -> Iterator[AppContext]:
    """The application context with :class:`HeaderAuthenticator` (import it
    into a test module to use it there)."""
    context = io_loop.run_sync(lambda: build_context(tus_config, authenticator=HeaderAuthenticator()))
    yield context
    io_loop.run_sync(lambda: context.lifecycle.join_tasks(10.0))
    io_loop.run_sync(context.aclose)
