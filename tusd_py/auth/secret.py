"""The HMAC secret shared by ``serve``, ``tusd-py token`` and signed links.

Where it comes from, first match wins: ``[auth] secret`` (TOML or env
``TUSD_PY_AUTH_SECRET``), ``[auth] secret_file`` (read by the config loader),
else the file :data:`GENERATED_NAME` in the data dir, created with mode 0600
on first use. Creation is atomic (a temporary file hard-linked into place),
so several workers starting at once agree on one secret.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from tusd_py.core.config import Config, ConfigError

GENERATED_NAME = "auth-secret"
#: PyJWT's minimum HMAC key length per algorithm (bytes).
MIN_SECRET_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


def generated_secret_path(config: Config) -> Path:
    """Where a generated secret lives for ``config``."""
    return config.data_dir / GENERATED_NAME


def missing_generated_secret(config: Config) -> Path | None:
    """The absolute path of the generated secret when ``config`` would need
    one and none exists yet (``serve`` never started with this data dir), else None.

    Does not create anything: ``tusd-py token`` uses it to refuse to mint with
    a secret no server uses.
    """
    if config.auth.secret:
        return None
    path = generated_secret_path(config)
    return None if path.exists() else path.absolute()


def resolve_secret(config: Config) -> str:
    """The secret for ``config``, generating the data-dir file if needed.

    Raises :class:`ConfigError` (``auth.secret``) when a configured secret is
    too short for the configured HMAC algorithm, or when the generated file
    cannot be created or read.
    """
    configured = config.auth.secret
    if configured:
        needed = MIN_SECRET_BYTES.get(config.auth.algorithm, 32)
        size = len(configured.encode())
        if size < needed:
            raise ConfigError(
                "auth.secret", f"must be at least {needed} bytes for {config.auth.algorithm} (got {size})"
            )
        return configured
    path = generated_secret_path(config)
    try:
        return _read_or_create(path)
    except OSError as exc:
        raise ConfigError(
            "auth.secret", f"cannot create or read the generated secret {path}: {exc}"
        ) from None


def _read_or_create(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    value = path.read_text().strip()
    if len(value) < 64:
        raise OSError(f"{path} holds fewer than 64 characters; delete it to generate a new secret")
    return value
