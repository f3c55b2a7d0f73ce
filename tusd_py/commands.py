"""Registers the optional subcommands that live in their own modules."""

from __future__ import annotations


def register_all() -> None:
    """Import subcommand modules so they register with :mod:`tusd_py.cli`."""
    from tusd_py.client import cli as client_cli

    client_cli.register()
