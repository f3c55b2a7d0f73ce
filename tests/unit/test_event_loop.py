"""``[server] event_loop``: asyncio by default, uvloop only when asked for
and installed, a clear config error when it is asked for and missing."""

from __future__ import annotations

import asyncio
import sys

import pytest

from tusd_py.cli.eventloop import loop_factory, loop_name, run_on_loop
from tusd_py.cli.main import main
from tusd_py.core.config import Config, ConfigError, load_config


def config(event_loop: str) -> Config:
    return load_config(environ={}, overrides={"server.event_loop": event_loop})


@pytest.fixture
def no_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import uvloop`` fail, whether or not it is installed."""
    monkeypatch.setitem(sys.modules, "uvloop", None)


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_the_default_is_the_standard_asyncio_loop() -> None:
    assert Config().server.event_loop == "asyncio"
    assert loop_factory(Config()) is None
    assert run_on_loop(Config(), _loop_module()).startswith("asyncio")


@pytest.mark.usefixtures("no_uvloop")
def test_auto_without_uvloop_runs_on_asyncio() -> None:
    assert loop_name(config("auto")) == "asyncio"
    assert run_on_loop(config("auto"), _loop_module()).startswith("asyncio")


@pytest.mark.usefixtures("no_uvloop")
def test_uvloop_asked_for_but_missing_is_a_config_error_naming_the_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main_coro = _loop_module()
    with pytest.raises(ConfigError, match="server.event_loop: uvloop is not installed"):
        run_on_loop(config("uvloop"), main_coro)
    assert main_coro.cr_frame is None  # closed, never left un-awaited
    code = main(["check-config", "--server-event-loop", "uvloop"])
    assert code == 2
    err = capsys.readouterr().err
    assert "server.event_loop" in err and "pip install 'tusd-py[fast]'" in err


def test_an_unknown_loop_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="server.event_loop: must be one of auto, asyncio, uvloop"):
        loop_factory(config("trio"))


def test_uvloop_when_installed() -> None:
    pytest.importorskip("uvloop")
    assert loop_name(config("auto")) == loop_name(config("uvloop")) == "uvloop"
    assert run_on_loop(config("uvloop"), _loop_module()).startswith("uvloop")
