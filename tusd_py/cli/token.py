"""``tusd-py token``: print one JWT that ``tusd-py serve`` with the same config accepts.

``tusd-py token --user U [--tier basic|premium|admin] [--ttl SECONDS]
[--config FILE] [--data-dir DIR]`` signs with the secret ``serve`` uses
(``[auth] secret`` / ``secret_file`` / env ``TUSD_PY_AUTH_SECRET``, else the
secret ``serve`` generated in its data dir) and adds ``aud``/``iss`` when the
config sets them. Only the token goes to stdout, so
``TOKEN=$(tusd-py token --user alice)`` works. ``--link`` prints a sign-in
link for the upload page instead (``http://HOST:PORT/#token=...``, host and
port from the config, or ``--link URL`` for a page elsewhere).

It never generates a secret: when none is configured and the data dir holds
no ``auth-secret`` (``serve`` never ran with it, e.g. ``token`` was run from
another directory than ``serve``), a token would be signed with a key no
server knows and refused with 401. ``token`` then exits 2 naming the data dir
it looked in and the flags that point it at the right one.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from tusd_py.auth.secret import missing_generated_secret
from tusd_py.auth.tiers import DEFAULT_TIER, TIERS
from tusd_py.auth.tokens import HMAC_ALGORITHMS, mint_token
from tusd_py.cli.args import Command
from tusd_py.core.config import Config, ConfigError, load_config
from tusd_py.web.urls import page_url, sign_in_link

DEFAULT_TTL = 86400.0
EXIT_CONFIG = 2


def _ttl(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError("ttl must be a positive number of seconds")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", required=True, help="the token's subject (owner id of uploads)")
    parser.add_argument("--tier", choices=TIERS, default=DEFAULT_TIER, help="tier claim (default basic)")
    parser.add_argument(
        "--ttl", type=_ttl, default=DEFAULT_TTL, metavar="SECONDS", help="lifetime (default 86400)"
    )
    parser.add_argument("--config", metavar="FILE", help="TOML config file (the one serve uses)")
    parser.add_argument("--data-dir", metavar="DIR", help="data dir of serve (holds the generated secret)")
    parser.add_argument(
        "--link",
        nargs="?",
        const="",
        metavar="URL",
        help="print a sign-in link for the upload page (default http://HOST:PORT/ of the config)",
    )


def run(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.data_dir:
        overrides["server.data_dir"] = args.data_dir
    config = load_config(config_file=args.config, overrides=overrides)
    refusal = _no_secret(config)
    if refusal:
        print(f"tusd-py token: {refusal}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        token = mint_token(config, user=args.user, tier=args.tier, ttl=args.ttl)
    except ConfigError:
        raise
    except ValueError as exc:
        print(f"tusd-py token: {exc}", file=sys.stderr)
        return 2
    if args.link is not None:
        page = args.link or page_url(config.server.host, config.server.port)
        print(sign_in_link(page, token))
        return 0
    print(token)
    return 0


def _no_secret(config: Config) -> str | None:
    """Why ``config`` has no secret a server uses (None: it has one)."""
    if config.auth.algorithm not in HMAC_ALGORITHMS:
        return None  # mint_token explains that only HMAC tokens can be minted
    missing = missing_generated_secret(config)
    if missing is None:
        return None
    return (
        f"no secret to sign with: {missing} does not exist, so `tusd-py serve` has not run with "
        f"the data dir {missing.parent}, and a token signed with a new secret would be refused "
        "(401 signature is invalid). What to do: pass the data dir of the running server with "
        "--data-dir DIR (serve prints the exact command when it starts), or the same --config FILE "
        "as serve, or set the same TUSD_PY_AUTH_SECRET for both."
    )


COMMAND = Command("token", "print a JWT accepted by serve (same config and data dir)", add_arguments, run)
