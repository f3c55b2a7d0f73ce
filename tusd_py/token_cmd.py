"""``tusd-py token``: print one JWT that ``tusd-py serve`` with the same config accepts.

``tusd-py token --user U [--tier basic|premium|admin] [--ttl SECONDS]
[--config FILE] [--data-dir DIR]`` signs with the secret ``serve`` uses
(``[auth] secret`` / ``secret_file`` / env ``TUSD_PY_AUTH_SECRET``, else the
secret generated in the data dir, created now if ``serve`` has not run yet)
and adds ``aud``/``iss`` when the config sets them. Only the token goes to
stdout, so ``TOKEN=$(tusd-py token --user alice)`` works.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tusd_py import cli
from tusd_py.config import ConfigError, load_config
from tusd_py.jwt_auth import mint_token
from tusd_py.tiers import DEFAULT_TIER, TIERS

DEFAULT_TTL = 86400.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", required=True, help="the token's subject (owner id of uploads)")
    parser.add_argument("--tier", choices=TIERS, default=DEFAULT_TIER, help="tier claim (default basic)")
    parser.add_argument(
        "--ttl", type=float, default=DEFAULT_TTL, metavar="SECONDS", help="lifetime (default 86400)"
    )
    parser.add_argument("--config", metavar="FILE", help="TOML config file (the one serve uses)")
    parser.add_argument("--data-dir", metavar="DIR", help="data dir of serve (holds the generated secret)")


def run(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.data_dir:
        overrides["server.data_dir"] = args.data_dir
    config = load_config(config_file=args.config, overrides=overrides)
    try:
        token = mint_token(config, user=args.user, tier=args.tier, ttl=args.ttl)
    except ConfigError:
        raise
    except ValueError as exc:
        print(f"tusd-py token: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def register() -> None:
    cli.register("token", "print a JWT accepted by serve (same config and data dir)", (add_arguments, run))
