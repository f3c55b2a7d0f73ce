"""The tier table: config keys, env mapping, size limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from tusd_py.auth.tiers import tier_of, tier_table
from tusd_py.core.config import Config, ConfigError, load_config
from tusd_py.core.config_sections import GIB
from tusd_py.core.models import Principal
from tusd_py.throttle.base import tier_size_limit

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_match_the_spec() -> None:
    table = tier_table(Config())
    assert (table["basic"].max_size, table["basic"].concurrency, table["basic"].creations_per_minute) == (
        GIB,
        5,
        10,
    )
    assert (table["premium"].max_size, table["premium"].concurrency) == (10 * GIB, 20)
    assert table["premium"].creations_per_minute == 60
    assert (table["admin"].max_size, table["admin"].concurrency, table["admin"].creations_per_minute) == (
        0,
        0,
        0,
    )
    assert Config().throttle.ip_creations_per_minute == 10


def test_env_and_toml_keys_map_mechanically(tmp_path: Path) -> None:
    conf = tmp_path / "t.toml"
    conf.write_text('[throttle]\npremium_max_size = "20GiB"\nbasic_concurrency = 2\n')
    config = load_config(
        config_file=str(conf),
        environ={"TUSD_PY_THROTTLE_BASIC_MAX_SIZE": "512MiB", "TUSD_PY_THROTTLE_BASIC_CONCURRENCY": "3"},
    )
    assert config.throttle.basic_max_size == 512 << 20
    assert config.throttle.basic_concurrency == 3  # env beats TOML
    assert config.throttle.premium_max_size == 20 * GIB


@pytest.mark.parametrize(("key", "value"), [("throttle.basic_concurrency", -1), ("throttle.lease_ttl", 0)])
def test_invalid_values_name_the_key(key: str, value: int) -> None:
    with pytest.raises(ConfigError, match=key):
        load_config(environ={}, overrides={key: value})


def test_size_limit_per_tier() -> None:
    limit = tier_size_limit(Config())
    assert limit is not None
    assert limit(Principal("a", "basic")) == GIB
    assert limit(Principal("a", "premium")) == 10 * GIB
    assert limit(Principal("a", "admin")) == 0
    assert tier_of(tier_table(Config()), Principal("a", "unknown")).name == "basic"


def test_example_config_documents_the_defaults() -> None:
    assert load_config(config_file=str(ROOT / "conf" / "tusd-py.toml"), environ={}) == Config()
