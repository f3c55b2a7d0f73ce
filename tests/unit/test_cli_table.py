"""The ``tusd-py`` command table (tusd_py.cli.main): fixed, complete, and light to import."""

from __future__ import annotations

import subprocess
import sys

from tusd_py.cli.main import COMMANDS, build_parser

EXPECTED = ["serve", "check-config", "token", "upload", "status", "ls", "download", "bench", "worker"]


def test_the_table_lists_every_subcommand_once_in_help_order() -> None:
    assert [command.name for command in COMMANDS] == EXPECTED
    help_text = build_parser().format_help()
    assert "{" + ",".join(EXPECTED) + "}" in help_text


def test_the_uploader_commands_do_not_load_the_server_stack() -> None:
    probe = (
        "import sys; import tusd_py.cli.main; "
        "heavy = [m for m in ('boto3', 'redis.asyncio', 'sqlite_utils', 'huey', 'magic') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    command = [sys.executable, "-c", probe]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""
