"""``[jobs]`` and ``[hooks]``: invalid values name their key."""

from __future__ import annotations

from typing import Any

import pytest

from tusd_py.core.config import ConfigError, load_config


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"jobs.workers": -1}, "jobs.workers"),
        ({"jobs.max_attempts": 0}, "jobs.max_attempts"),
        ({"jobs.visibility_timeout": 0}, "jobs.visibility_timeout"),
        ({"jobs.retry_delay": -1}, "jobs.retry_delay"),
        ({"hooks.url": "http://127.0.0.1:9/h"}, "hooks.secret"),
        ({"hooks.pre_create_url": "http://127.0.0.1:9/p"}, "hooks.secret"),
        ({"hooks.url": "ftp://x", "hooks.secret": "s"}, "hooks.url"),
        ({"hooks.pre_create_url": "x", "hooks.secret": "s"}, "hooks.pre_create_url"),
        ({"hooks.pre_create_on_error": "maybe"}, "hooks.pre_create_on_error"),
        ({"hooks.timeout": 0}, "hooks.timeout"),
    ],
)
def test_invalid_values_name_their_key(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={}, overrides=overrides)
    assert info.value.key == key


def test_hook_urls_from_env_and_secret_from_a_file(tmp_path: Any) -> None:
    secret = tmp_path / "hook-secret"
    secret.write_text("from-file\n")
    config = load_config(
        environ={
            "TUSD_PY_HOOKS_URL": "http://127.0.0.1:1/a, http://127.0.0.1:1/b",
            "TUSD_PY_HOOKS_SECRET_FILE": str(secret),
        }
    )
    assert config.hooks.url == ("http://127.0.0.1:1/a", "http://127.0.0.1:1/b")
    assert config.hooks.secret == "from-file"
