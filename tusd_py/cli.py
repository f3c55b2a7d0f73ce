"""The ``tusd-py`` command line: ``serve``, ``check-config`` and the other
subcommands registered in :data:`SUBCOMMANDS`.

Every config key is a flag ``--<section>-<key>`` (``[server]`` keys also as
``--<key>``), except secrets, which never come from argv.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from tusd_py import __version__
from tusd_py import config as config_mod
from tusd_py.config import Config, ConfigError, load_config

#: ``name -> (add_arguments, run)``; run returns the exit code.
Subcommand = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """``--config`` and one flag per non-secret config key."""
    parser.add_argument("--config", metavar="FILE", help="TOML config file")
    for section in config_mod.sections():
        group = parser.add_argument_group(f"[{section}]")
        for key, kind in config_mod.section_fields(section).items():
            if key in config_mod.SECRET_KEYS:
                continue
            names = [f"--{section}-{key}".replace("_", "-")]
            if section == "server":
                names.insert(0, f"--{key}".replace("_", "-"))
            group.add_argument(
                *names,
                dest=f"cfg__{section}__{key}",
                default=None,
                metavar=key.upper() if kind is not bool else "BOOL",
                help=f"{section}.{key} (env {config_mod.env_name(section, key)})",
            )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="serve without authentication (refused unless the host is a loopback address)",
    )


def config_from_args(args: argparse.Namespace) -> Config:
    """The effective config for parsed ``args`` (flags beat env beat TOML)."""
    overrides: dict[str, Any] = {}
    for name, value in vars(args).items():
        if name.startswith("cfg__") and value is not None:
            _, section, key = name.split("__", 2)
            overrides[f"{section}.{key}"] = value
    if getattr(args, "no_auth", False):
        overrides["auth.enabled"] = False
    return load_config(config_file=args.config, overrides=overrides)


def _serve_args(parser: argparse.ArgumentParser) -> None:
    add_config_flags(parser)


def _serve(args: argparse.Namespace) -> int:
    from tusd_py.logs import configure_logging
    from tusd_py.serve_cmd import serve

    config = config_from_args(args)
    pipeline = configure_logging()
    try:
        return serve(config, args.config)
    finally:
        pipeline.stop()


def _check_args(parser: argparse.ArgumentParser) -> None:
    add_config_flags(parser)


def _check(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    from tusd_py.serve_cmd import check_serve_allowed

    check_serve_allowed(config)
    print(json.dumps(config_mod.describe(config), indent=2, sort_keys=False))
    return 0


SUBCOMMANDS: dict[str, tuple[str, Subcommand]] = {
    "serve": ("run the upload server", (_serve_args, _serve)),
    "check-config": ("validate and print the effective config (secrets masked)", (_check_args, _check)),
}


def register(name: str, help_text: str, command: Subcommand) -> None:
    """Add a subcommand (used by modules that provide one)."""
    SUBCOMMANDS[name] = (help_text, command)


def build_parser() -> argparse.ArgumentParser:
    from tusd_py import commands

    commands.register_all()
    parser = argparse.ArgumentParser(prog="tusd-py", description="resumable upload server (tus 1.0.0)")
    parser.add_argument("--version", action="version", version=f"tusd-py {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, (add_args, run)) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args._run(args)
        return code
    except ConfigError as exc:
        print(f"tusd-py: config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def run_async(coro: Any) -> Any:
    """Run a coroutine to completion in a fresh event loop."""
    return asyncio.run(coro)
