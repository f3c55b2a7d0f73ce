"""Registers the optional subcommands that live in their own modules."""

from __future__ import annotations


def register_all() -> None:
    """Import subcommand modules so they register with :mod:`tusd_py.cli`."""
    from tusd_py import bench_cmd, token_cmd
    from tusd_py.client import cli as client_cli
    from tusd_py.jobs import worker_cmd

    token_cmd.register()
    client_cli.register()
    bench_cmd.register()
    worker_cmd.register()
