"""``tusd-py serve``: start the server from a config and print where it is."""

from __future__ import annotations

import asyncio
import shlex

from tusd_py.config import Config, ConfigError, is_loopback
from tusd_py.jwt_auth import HMAC_ALGORITHMS
from tusd_py.server import RunningServer, run
from tusd_py.workers import serve_workers


def check_serve_allowed(config: Config) -> None:
    """Refuse ``--no-auth`` unless the server listens on loopback only."""
    if not config.auth.enabled and not is_loopback(config.server.host):
        raise ConfigError(
            "auth.enabled",
            f"--no-auth is only allowed on a loopback host, not {config.server.host!r}",
        )


def _announce_url(config: Config, port: int) -> None:
    host = config.server.host
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}{config.server.base_path}"
    workers = f" ({config.server.workers} workers)" if config.server.workers > 1 else ""
    print(f"tusd-py listening on {url}{workers}", flush=True)
    print(token_hint(config), flush=True)


def token_hint(config: Config) -> str:
    """How to get a token for this server (one line)."""
    if not config.auth.enabled:
        return "auth is off (--no-auth): every request acts as the admin user 'local'"
    if config.auth.algorithm not in HMAC_ALGORITHMS:
        return f"auth: bearer JWTs signed with {config.auth.algorithm} by your identity provider"
    where = "" if config.auth.secret else f" --data-dir {shlex.quote(config.server.data_dir)}"
    return (
        f"get a token: tusd-py token --user NAME{where} [--tier premium|admin] [--ttl SECONDS]"
        " (plus this server's --config, if any); send it as 'Authorization: Bearer TOKEN'"
    )


def _announce(running: RunningServer) -> None:
    _announce_url(running.ctx.config, running.port)


def serve(config: Config) -> int:
    """Run until SIGTERM; returns the exit code."""
    check_serve_allowed(config)
    if config.server.workers > 1:
        return serve_workers(config, _announce_url)
    return asyncio.run(run(config, announce=_announce))
