"""Registers the optional subcommands that live in their own modules."""

from __future__ import annotations


def register_all() -> None:
    """Import subcommand modules so they register with :mod:`tusd_py.cli`."""
    from tusd_py import bench_cmd

    bench_cmd.register()
    from tusd_py import token_cmd

    token_cmd.register()
