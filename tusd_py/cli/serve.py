"""``tusd-py serve``: start the server from a config and print where it is."""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
from typing import TYPE_CHECKING

from tusd_py.auth.secret import missing_generated_secret
from tusd_py.auth.tokens import HMAC_ALGORITHMS, mint_token
from tusd_py.cli.args import Command, add_config_flags, config_from_args
from tusd_py.cli.eventloop import loop_factory, run_on_loop
from tusd_py.core import config as config_mod
from tusd_py.core.config import Config, ConfigError, is_loopback
from tusd_py.ops.heap import Trimmer, limit_arenas
from tusd_py.ops.logs import configure_logging
from tusd_py.web.urls import page_url, sign_in_link

if TYPE_CHECKING:
    from tusd_py.cli.server import RunningServer

#: Lifetime of the admin sign-in link printed on a local first run (seconds).
FIRST_RUN_LINK_TTL = 86400.0

#: Environment variables that can carry the HMAC secret (``token`` needs them too).
_SECRET_ENV = ("TUSD_PY_AUTH_SECRET", "TUSD_PY_AUTH_SECRET_FILE")


def check_serve_allowed(config: Config) -> None:
    """Refuse ``--no-auth`` unless the server listens on loopback only, and an
    event loop that cannot be had (``server.event_loop``)."""
    loop_factory(config)
    if not config.auth.enabled and not is_loopback(config.server.host):
        raise ConfigError(
            "auth.enabled",
            f"--no-auth is only allowed on a loopback host, not {config.server.host!r}",
        )


def _announce_url(
    config: Config, port: int, *, config_file: str | None = None, first_run: bool = False
) -> None:
    """The banner: the upload page first, then the tus endpoint on the same line (parsers
    read the URL after ``listening on``), the token hint, and on a local first run an
    admin sign-in link for the page."""
    host = config.server.host
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}{config.server.base_path}"
    workers = f" ({config.server.workers} workers)" if config.server.workers > 1 else ""
    page = page_url(host, port)
    print(f"tusd-py: open {page} to upload; listening on {url}{workers}", flush=True)
    print(token_hint(config, config_file), flush=True)
    if first_run:
        token = mint_token(config, user="admin", tier="admin", ttl=FIRST_RUN_LINK_TTL)
        print(f"first run: sign in as admin (24 h) at {sign_in_link(page, token)}", flush=True)


def _first_local_run(config: Config) -> bool:
    """True when serve is about to generate its secret on a loopback host: a
    sign-in link may then be printed (nobody else can reach the server)."""
    return (
        config.auth.enabled
        and config.auth.algorithm in HMAC_ALGORITHMS
        and is_loopback(config.server.host)
        and missing_generated_secret(config) is not None
    )


def token_hint(config: Config, config_file: str | None = None) -> str:
    """How to get a token for this server (one line).

    The command it shows works from any directory: ``--data-dir`` (where the
    generated secret lives) and ``--config`` are absolute paths. A secret set
    only in the environment is named, since ``token`` needs it too.
    """
    if not config.auth.enabled:
        return "auth is off (--no-auth): every request acts as the admin user 'local'"
    if config.auth.algorithm not in HMAC_ALGORITHMS:
        return f"auth: bearer JWTs signed with {config.auth.algorithm} by your identity provider"
    where = ""
    if config_file:
        where += f" --config {shlex.quote(os.path.abspath(config_file))}"
    if not config.auth.secret:
        where += f" --data-dir {shlex.quote(os.path.abspath(config.server.data_dir))}"
    elif any(os.environ.get(name) for name in _SECRET_ENV):
        where += f" (with this server's {' or '.join(_SECRET_ENV)} set)"
    return (
        f"get a token: tusd-py token --user NAME{where} [--tier premium|admin] [--ttl SECONDS]; "
        "send it as 'Authorization: Bearer TOKEN'"
    )


def serve(config: Config, config_file: str | None = None) -> int:
    """Run until SIGTERM; returns the exit code. ``config_file``: the ``--config``
    the config came from (named in the token hint)."""
    # The server stack is imported here, not at the top: every ``tusd-py`` command
    # imports this module for its table entry, and the uploader commands start
    # about a second sooner without Tornado's server side, boto3 and the rest.
    from tusd_py.cli.server import run
    from tusd_py.cli.workers import serve_workers

    check_serve_allowed(config)
    limit_arenas()  # before any thread starts; --workers children inherit it
    announce_url = functools.partial(
        _announce_url, config_file=config_file, first_run=_first_local_run(config)
    )
    if config.server.workers > 1:
        return serve_workers(config, announce_url)

    def announce(running: RunningServer) -> None:
        announce_url(running.ctx.config, running.port)

    with Trimmer():
        return run_on_loop(config, run(config, announce=announce))


def _serve(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    pipeline = configure_logging()
    try:
        return serve(config, args.config)
    finally:
        pipeline.stop()


def _check(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    check_serve_allowed(config)
    print(json.dumps(config_mod.describe(config), indent=2, sort_keys=False))
    return 0


SERVE = Command("serve", "run the upload server", add_config_flags, _serve)
CHECK_CONFIG = Command(
    "check-config", "validate and print the effective config (secrets masked)", add_config_flags, _check
)
