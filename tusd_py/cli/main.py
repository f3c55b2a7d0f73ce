"""The ``tusd-py`` command line: one fixed table of subcommands.

Every config key is a flag ``--<section>-<key>`` (``[server]`` keys also as
``--<key>``), except secrets, which never come from argv
(:func:`tusd_py.cli.args.add_config_flags`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tusd_py import __version__
from tusd_py.cli import bench, serve, token, worker
from tusd_py.cli.args import Command
from tusd_py.cli.client import commands as client
from tusd_py.core.config import ConfigError

#: Every subcommand, in ``--help`` order.
COMMANDS: tuple[Command, ...] = (
    serve.SERVE,
    serve.CHECK_CONFIG,
    token.COMMAND,
    *client.COMMANDS,
    bench.COMMAND,
    worker.COMMAND,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(prog="tusd-py", description="resumable upload server (tus 1.0.0)")
    parser.add_argument("--version", action="version", version=f"tusd-py {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tusd-py`` with ``argv``; returns the exit code (2 on a config error)."""
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
