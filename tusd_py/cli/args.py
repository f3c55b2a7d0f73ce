"""Flags and helpers shared by the ``tusd-py`` subcommands (no subcommand here).

Every subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int``;
:mod:`tusd_py.cli.main` lists them in one fixed table.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tusd_py.core import config as config_mod
from tusd_py.core.config import Config, load_config


@dataclass(frozen=True)
class Command:
    """One ``tusd-py`` subcommand: its name, one-line help, flags and body (returns the exit code)."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


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


def run_async(coro: Any) -> Any:
    """Run a coroutine to completion in a fresh event loop."""
    return asyncio.run(coro)
