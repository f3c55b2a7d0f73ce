"""``conf/tusd-py.toml`` documents every config key.

Convention: every key of every ``Config`` section appears *uncommented* with
its default value, inside a block (lines up to the next blank line) that
starts with a ``#`` comment explaining it. So the file loads to exactly the
defaults, and a key added to ``tusd_py/core/config_sections.py`` without documentation
fails here.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from tusd_py.core import config as config_mod
from tusd_py.core.config import Config, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "conf" / "tusd-py.toml"


def test_every_config_key_is_in_the_example_and_nothing_else() -> None:
    documented = tomllib.loads(EXAMPLE.read_text())
    assert list(documented) == list(config_mod.sections())
    for section in config_mod.sections():
        missing = set(config_mod.section_fields(section)) - set(documented[section])
        extra = set(documented[section]) - set(config_mod.section_fields(section))
        assert not missing, f"[{section}] keys not documented in {EXAMPLE.name}: {sorted(missing)}"
        assert not extra, f"[{section}] keys in {EXAMPLE.name} that do not exist: {sorted(extra)}"


def test_the_example_shows_the_defaults() -> None:
    assert load_config(config_file=str(EXAMPLE), environ={}) == Config()


def test_every_key_sits_in_a_commented_block() -> None:
    block_has_comment = False
    undocumented = []
    for line in EXAMPLE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("["):
            block_has_comment = False
        elif stripped.startswith("#"):
            block_has_comment = True
        elif not block_has_comment:
            undocumented.append(stripped.split("=", 1)[0].strip())
    assert not undocumented, f"keys without a comment above them: {undocumented}"
