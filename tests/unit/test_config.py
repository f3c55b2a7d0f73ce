"""``tusd_py.core.config``: precedence defaults < TOML < env < overrides, value
conversion, validation errors naming the key, secrets from ``*_file``."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

import pytest

from tusd_py.core.config import (
    Config,
    ConfigError,
    describe,
    env_name,
    load_config,
    parse_size,
    section_fields,
    sections,
)
from tusd_py.core.config_sections import ServerConfig

#: (key, TOML value, env value, override value, expected from each layer)
LAYERED = [
    ("server.port", (9001, "9002", 9003), (9001, 9002, 9003)),
    ("server.max_size", ("1MiB", "2M", "3G"), (1 << 20, 2 << 20, 3 << 30)),
    ("server.trust_proxy", (True, "false", "yes"), (True, False, True)),
    (
        "server.cors_origins",
        (["https://a"], "https://b, https://c", ("https://d",)),
        (("https://a",), ("https://b", "https://c"), ("https://d",)),
    ),
    ("server.network_timeout", (5, "6.5", 7.25), (5.0, 6.5, 7.25)),
    ("s3.bucket", ("from-toml", "from-env", "from-flag"), ("from-toml", "from-env", "from-flag")),
]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    return str(value)


def get(config: Config, dotted: str) -> Any:
    section, key = dotted.split(".")
    return getattr(getattr(config, section), key)


@pytest.mark.parametrize(("key", "values", "expected"), LAYERED, ids=[k for k, _, _ in LAYERED])
@pytest.mark.parametrize(
    "layers",
    list(itertools.product([False, True], repeat=3)),
    ids=lambda v: "".join("TEO"[i] if on else "-" for i, on in enumerate(v)),
)
def test_precedence_matrix(
    tmp_path: Path,
    key: str,
    values: tuple[Any, Any, Any],
    expected: tuple[Any, Any, Any],
    layers: tuple[bool, bool, bool],
) -> None:
    """Every combination of TOML (T), env (E) and override (O): the highest present wins."""
    use_toml, use_env, use_override = layers
    section, name = key.split(".")
    config_file = None
    if use_toml:
        path = tmp_path / "c.toml"
        path.write_text(f"[{section}]\n{name} = {toml_value(values[0])}\n")
        config_file = str(path)
    environ = {env_name(section, name): values[1]} if use_env else {}
    overrides = {key: values[2]} if use_override else {}
    config = load_config(config_file=config_file, environ=environ, overrides=overrides)
    if use_override:
        want = expected[2]
    elif use_env:
        want = expected[1]
    elif use_toml:
        want = expected[0]
    else:
        want = getattr(getattr(Config(), section), name)
    assert get(config, key) == want


def test_defaults_match_the_dataclasses() -> None:
    assert load_config(environ={}) == Config()
    assert Config().server == ServerConfig()


def test_env_prefix_and_names() -> None:
    assert env_name("s3", "endpoint_url") == "TUSD_PY_S3_ENDPOINT_URL"
    config = load_config(environ={"TUSD_PY_S3_ENDPOINT_URL": "http://127.0.0.1:9", "OTHER": "x"})
    assert config.s3.endpoint_url == "http://127.0.0.1:9"


def test_config_is_frozen() -> None:
    config = load_config(environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.server.port = 1  # type: ignore[misc]


def test_every_key_is_documented_in_the_example_config() -> None:
    example = (Path(__file__).parents[2] / "conf" / "tusd-py.toml").read_text()
    for section in sections():
        assert f"[{section}]" in example
        for key in section_fields(section):
            assert f"\n{key} = " in example, f"{section}.{key} missing from conf/tusd-py.toml"


def test_example_config_loads(tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "conf" / "tusd-py.toml"
    assert load_config(config_file=str(example), environ={}) == Config()


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("123", 123),
        ("8MiB", 8 << 20),
        ("8M", 8 << 20),
        ("8mb", 8 << 20),
        ("1G", 1 << 30),
        ("2k", 2048),
        (" 3 KiB ", 3072),
        ("1T", 1 << 40),
    ],
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "M", "1.5M", "-1", "1 parsec", "1MiBs"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


BAD_VALUES = [
    ("server.port", "abc"),
    ("server.port", 70000),
    ("server.port", True),
    ("server.base_path", "files"),
    ("server.base_path", "/files"),
    ("server.workers", 0),
    ("server.trust_proxy", "maybe"),
    ("server.max_size", "10 parsecs"),
    ("server.max_size", -1),
    ("server.read_size", 100),
    ("server.max_header_size", 10),
    ("server.network_timeout", 0),
    ("server.network_timeout", "soon"),
    ("server.lock_timeout", -1),
    ("server.expiration", 0),
    ("server.sweep_interval", 0),
    ("server.progress_interval", 0),
    ("server.drain_timeout", -1),
    ("local.fsync", "sometimes"),
    ("s3.part_size", "1MiB"),
    ("s3.concurrency", 0),
    ("s3.spool_parts", 0),
    ("s3.max_parts", 10_001),
    ("s3.download", "teleport"),
    ("redis.url", "http://localhost"),
    ("auth.algorithm", "none"),
    ("auth.leeway", "long"),
]


@pytest.mark.parametrize(("key", "value"), BAD_VALUES, ids=[f"{k}={v}" for k, v in BAD_VALUES])
def test_bad_values_name_the_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={}, overrides={key: value})
    assert info.value.key == key
    assert str(info.value).startswith(key + ":")


@pytest.mark.parametrize(("key", "value"), [("server.port", "abc"), ("server.trust_proxy", "maybe")])
def test_bad_env_values_name_the_key(key: str, value: str) -> None:
    section, name = key.split(".")
    with pytest.raises(ConfigError) as info:
        load_config(environ={env_name(section, name): value})
    assert info.value.key == key


def test_bad_toml_values_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\nport = "eighty"\n')
    with pytest.raises(ConfigError) as info:
        load_config(config_file=str(path), environ={})
    assert info.value.key == "server.port"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[server]\nportt = 1\n", "server.portt"),
        ("[nope]\nx = 1\n", "nope"),
        ("port = 1\n", "port"),  # a key outside any section
        ("[server\n", "config"),  # not TOML
    ],
)
def test_unknown_or_broken_toml(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(config_file=str(path), environ={})
    assert info.value.key == key


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(config_file=str(tmp_path / "absent.toml"), environ={})
    assert info.value.key == "config"


@pytest.mark.parametrize("key", ["server.nope", "nope.port"])
def test_unknown_override_keys(key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={}, overrides={key: 1})
    assert info.value.key == key


def test_unknown_env_names_are_ignored() -> None:
    assert load_config(environ={"TUSD_PY_SERVER_NOPE": "1", "TUSD_PY_X": "y"}) == Config()


# --- secrets ----------------------------------------------------------------------------


def test_secret_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t\n")
    config = load_config(environ={"TUSD_PY_AUTH_SECRET_FILE": str(secret)})
    assert config.auth.secret == "s3cr3t"
    key = tmp_path / "aws"
    key.write_text("AKIA-secret")
    config = load_config(environ={}, overrides={"s3.secret_access_key_file": str(key)})
    assert config.s3.secret_access_key == "AKIA-secret"


def test_explicit_secret_wins_over_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-file")
    config = load_config(environ={"TUSD_PY_AUTH_SECRET": "from-env", "TUSD_PY_AUTH_SECRET_FILE": str(secret)})
    assert config.auth.secret == "from-env"


def test_unreadable_secret_file_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={"TUSD_PY_AUTH_SECRET_FILE": str(tmp_path / "missing")})
    assert info.value.key == "auth.secret_file"


def test_describe_masks_secrets(tmp_path: Path) -> None:
    config = load_config(
        environ={"TUSD_PY_AUTH_SECRET": "hunter2"}, overrides={"s3.secret_access_key": "aws-key"}
    )
    described = describe(config)
    assert described["auth"]["secret"] == "***"
    assert described["s3"]["secret_access_key"] == "***"
    assert "hunter2" not in repr(described) and "aws-key" not in repr(described)
    assert described["server"]["cors_origins"] == ["*"]
    assert describe(load_config(environ={}))["auth"]["secret"] == ""  # nothing to mask
