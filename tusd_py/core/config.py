"""Configuration: one frozen :class:`Config`, built once by :func:`load_config`.

Precedence (lowest first): dataclass defaults < TOML file (``[section] key``)
< environment (``TUSD_PY_<SECTION>_<KEY>``) < command-line flags
(``--<section>-<key>``; keys of ``[server]`` also as ``--<key>``). Secrets
(``secret``-like keys) come from TOML, env or a ``*_file`` path, never argv.

Sizes accept plain integers or ``"100MiB"``/``"8M"``/``"1G"``; durations are
seconds (float). Lists are TOML arrays or comma-separated strings.
:func:`load_config` is the only reader of files, env and argv; nothing mutates
a ``Config`` afterwards.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "TUSD_PY_"
MIB = 1 << 20
GIB = 1 << 30


class ConfigError(ValueError):
    """A config value is invalid; ``key`` is ``section.key``."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{key}: {message}")


@dataclass(frozen=True)
class ServerConfig:
    """``[server]``: listening, protocol and timing settings."""

    host: str = "127.0.0.1"
    port: int = 8080
    base_path: str = "/files/"
    data_dir: str = "./data"
    workers: int = 1
    #: Honour X-Forwarded-Host/-Proto and Forwarded when building Location.
    trust_proxy: bool = False
    #: Origins allowed by CORS; "*" allows any origin (bearer tokens, no cookies).
    cors_origins: tuple[str, ...] = ("*",)
    #: Tus-Max-Size in bytes; 0 means no server-wide limit.
    max_size: int = 0
    #: Body read size of the HTTP server (bytes per data_received call at most).
    read_size: int = 1 * MIB
    #: A PATCH body idle this long (seconds) is cut; its bytes are kept.
    network_timeout: float = 60.0
    #: How long a request waits for another request's lock on an upload.
    lock_timeout: float = 20.0
    #: On SIGTERM, in-flight uploads get this long to finish.
    drain_timeout: float = 25.0
    #: A request refused before its body is read has up to this many body bytes
    #: read and discarded, so the client receives the refusal instead of a reset.
    refusal_drain: int = 64 * MIB
    #: A release request (another client wants the upload) cuts the holder only
    #: once its client has sent nothing for this long (seconds).
    release_idle: float = 2.0
    #: Move large PATCH/POST bodies on plain HTTP from the socket to a local
    #: upload file with splice(2), without copying them through Python
    #: (see :mod:`tusd_py.zerocopy`); false = always the copying path.
    zero_copy: bool = True
    #: Event loop: "asyncio", "uvloop" (the ``fast`` extra) or "auto" (uvloop when importable).
    event_loop: str = "asyncio"
    #: Incomplete uploads expire this long after their last PATCH (sliding).
    expiration: float = 24 * 3600.0
    #: Interval of the expiry sweeper.
    sweep_interval: float = 60.0
    #: Expired tombstones (answering 410) are forgotten after this long.
    tombstone_ttl: float = 7 * 24 * 3600.0
    #: Offsets of streaming uploads are published at least this often.
    progress_interval: float = 0.5
    max_header_size: int = 64 * 1024
    #: Server-wide cap on request bodies streaming at once (0 = unlimited).
    max_streams: int = 0
    #: Whether GET /files/{id} serves complete uploads.
    downloads: bool = True


@dataclass(frozen=True)
class LocalConfig:
    """``[local]``: the local-disk backend."""

    #: fsync policy: "never", "on_complete" or "every_patch".
    fsync: str = "on_complete"


@dataclass(frozen=True)
class S3Config:
    """``[s3]``: the S3 relay backend (enabled when ``bucket`` is set)."""

    bucket: str = ""
    prefix: str = ""
    region: str = ""
    endpoint_url: str = ""
    path_style: bool = False
    access_key_id: str = ""
    secret_access_key: str = ""
    secret_access_key_file: str = ""
    #: Uploads whose length exceeds this go to S3.
    threshold: int = 100 * MIB
    part_size: int = 8 * MIB
    min_part_size: int = 5 * MIB
    max_parts: int = 10_000
    concurrency: int = 4
    #: Parts spooled on disk per upload before the client is slowed down.
    spool_parts: int = 4
    #: GET of an S3 object: "redirect" (presigned URL) or "proxy".
    download: str = "redirect"
    presign_ttl: float = 600.0
    max_attempts: int = 5
    #: Connect/read timeout of one S3 call (seconds).
    timeout: float = 30.0
    #: Keep the unfinished last part in the bucket (``<key>.part``) instead of
    #: the local spool, for instances that share no data dir.
    tail_in_bucket: bool = False


@dataclass(frozen=True)
class RedisConfig:
    """``[redis]``: shared state, locks and limits for many instances."""

    url: str = ""
    prefix: str = "tusd-py:"
    #: Upload locks expire this long (seconds) after their holder stops heartbeating.
    lock_ttl: float = 10.0
    #: Connect/read timeout of one Redis command (seconds): past it the request
    #: gets 503 with Retry-After instead of waiting.
    timeout: float = 2.0


@dataclass(frozen=True)
class StateConfig:
    """``[state]``: where upload records live when Redis is not configured."""

    sqlite_path: str = ""


@dataclass(frozen=True)
class AuthConfig:
    """``[auth]``: bearer-token authentication."""

    enabled: bool = True
    algorithm: str = "HS256"
    secret: str = ""
    secret_file: str = ""
    public_key_file: str = ""
    jwks_file: str = ""
    audience: str = ""
    issuer: str = ""
    leeway: float = 30.0
    tier_claim: str = "tier"
    link_ttl: float = 600.0


#: MIME types libmagic reports for native executables and shared libraries
#: (ELF, PE/MS-DOS, Mach-O); refused by default. Scripts are text: allowed.
EXECUTABLE_TYPES = (
    "application/x-executable",
    "application/x-pie-executable",
    "application/x-sharedlib",
    "application/x-mach-binary",
    "application/vnd.microsoft.portable-executable",
    "application/x-dosexec",
    "application/x-msdownload",
)


@dataclass(frozen=True)
class FiletypesConfig:
    """``[filetypes]``: python-magic checks on the first bytes of every upload.

    A type is accepted when it matches ``allow`` and does not match ``deny``;
    patterns are MIME types, ``type/*`` or ``*``.
    """

    enabled: bool = True
    allow: tuple[str, ...] = ("*",)
    deny: tuple[str, ...] = EXECUTABLE_TYPES


@dataclass(frozen=True)
class ApiConfig:
    """``[api]``: the REST routes beside tus (``/index``, listing)."""

    #: How long an ``Idempotency-Key`` of ``POST /index`` is remembered.
    idempotency_ttl: float = 24 * 3600.0
    #: Default and largest page size of ``GET <base_path>``.
    page_size: int = 100
    max_page_size: int = 1000


@dataclass(frozen=True)
class ThrottleConfig:
    """``[throttle]``: the tier table and per-IP limits (0 = unlimited).

    Per tier ``<tier>_max_size`` (bytes per upload), ``<tier>_concurrency``
    (request bodies streaming at once per user) and
    ``<tier>_creations_per_minute`` (per user).
    """

    basic_max_size: int = 1 * GIB
    basic_concurrency: int = 5
    basic_creations_per_minute: int = 10
    premium_max_size: int = 10 * GIB
    premium_concurrency: int = 20
    premium_creations_per_minute: int = 60
    admin_max_size: int = 0
    admin_concurrency: int = 0
    admin_creations_per_minute: int = 0
    #: Upload creations per client IP per minute (raised to the caller's tier rate).
    ip_creations_per_minute: int = 10
    #: All requests per client IP per minute.
    ip_requests_per_minute: int = 6000
    #: A stream slot not refreshed for this long (crashed instance) is freed.
    lease_ttl: float = 30.0


@dataclass(frozen=True)
class JobsConfig:
    """``[jobs]``: the processing queue (SPEC §7)."""

    #: Consumer threads ``serve`` runs in-process (0 = none; run ``tusd-py worker``).
    workers: int = 2
    #: Queue an ``index`` job when a CSV/NDJSON upload completes.
    auto_index: bool = True
    #: A malformed line fails the whole index job.
    strict: bool = False
    #: Attempts before a job is FAILED (dead letter).
    max_attempts: int = 5
    #: A PROCESSING job whose worker stopped renewing its lease this long is re-queued.
    visibility_timeout: float = 30.0
    #: First retry delay (seconds); doubles per attempt up to ``max_retry_delay``.
    retry_delay: float = 2.0
    max_retry_delay: float = 300.0


@dataclass(frozen=True)
class HooksConfig:
    """``[hooks]``: webhooks (SPEC §7)."""

    #: Receivers of the webhook events (none = no webhooks).
    url: tuple[str, ...] = ()
    #: HMAC-SHA256 key of the ``Tusd-Signature`` header.
    secret: str = ""
    secret_file: str = ""
    #: Seconds a receiver has to answer one delivery (and the pre-create hook).
    timeout: float = 10.0
    #: Asked (blocking) before each upload is created; may refuse it or rewrite its metadata.
    pre_create_url: str = ""
    #: When the pre-create hook fails or times out: "reject" (503) or "allow".
    pre_create_on_error: str = "reject"


@dataclass(frozen=True)
class Config:
    """The whole effective configuration."""

    server: ServerConfig = field(default_factory=ServerConfig)
    local: LocalConfig = field(default_factory=LocalConfig)
    s3: S3Config = field(default_factory=S3Config)
    redis: RedisConfig = field(default_factory=RedisConfig)
    state: StateConfig = field(default_factory=StateConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    throttle: ThrottleConfig = field(default_factory=ThrottleConfig)
    filetypes: FiletypesConfig = field(default_factory=FiletypesConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)
    hooks: HooksConfig = field(default_factory=HooksConfig)

    def __post_init__(self) -> None:
        validate(self)

    @property
    def data_dir(self) -> Path:
        return Path(self.server.data_dir)

    @property
    def sqlite_path(self) -> Path:
        return Path(self.state.sqlite_path) if self.state.sqlite_path else self.data_dir / "state.db"


SECRET_KEYS = frozenset({"secret", "secret_access_key"})
#: Config keys holding sizes (accept "8MiB"-style strings).
SIZE_KEYS = frozenset(
    {"max_size", "read_size", "threshold", "part_size", "min_part_size", "max_header_size"}
    | {"basic_max_size", "premium_max_size", "admin_max_size"}
)


def sections() -> dict[str, type[Any]]:
    """``{section name: dataclass}`` in declaration order."""
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config)}


def section_fields(section: str) -> dict[str, Any]:
    """``{key: type}`` of one section."""
    cls = sections()[section]
    return typing.get_type_hints(cls)


def validate(config: Config) -> None:
    """Raise :class:`ConfigError` naming the first invalid key."""
    s = config.server
    if not (0 <= s.port <= 65535):
        raise ConfigError("server.port", f"must be 0..65535, got {s.port}")
    if not s.base_path.startswith("/") or not s.base_path.endswith("/"):
        raise ConfigError("server.base_path", f"must start and end with '/', got {s.base_path!r}")
    if s.workers < 1:
        raise ConfigError("server.workers", "must be at least 1")
    for key in ("network_timeout", "lock_timeout", "expiration", "sweep_interval", "progress_interval"):
        if getattr(s, key) <= 0:
            raise ConfigError(f"server.{key}", "must be positive")
    if s.drain_timeout < 0:
        raise ConfigError("server.drain_timeout", "must not be negative")
    if s.refusal_drain < 0:
        raise ConfigError("server.refusal_drain", "must not be negative")
    if s.release_idle < 0:
        raise ConfigError("server.release_idle", "must not be negative")
    if s.max_header_size < 1024:
        raise ConfigError("server.max_header_size", "must be at least 1024 bytes")
    if s.read_size < 4096:
        raise ConfigError("server.read_size", "must be at least 4096 bytes")
    if s.max_size < 0:
        raise ConfigError("server.max_size", "must not be negative")
    if config.local.fsync not in ("never", "on_complete", "every_patch"):
        raise ConfigError("local.fsync", "must be never, on_complete or every_patch")
    s3 = config.s3
    if s3.part_size < s3.min_part_size:
        raise ConfigError("s3.part_size", f"must be at least s3.min_part_size ({s3.min_part_size})")
    if s3.concurrency < 1:
        raise ConfigError("s3.concurrency", "must be at least 1")
    if s3.spool_parts < 1:
        raise ConfigError("s3.spool_parts", "must be at least 1")
    if s3.max_parts < 1 or s3.max_parts > 10_000:
        raise ConfigError("s3.max_parts", "must be 1..10000")
    if s3.timeout <= 0:
        raise ConfigError("s3.timeout", "must be positive")
    if s3.download not in ("redirect", "proxy"):
        raise ConfigError("s3.download", "must be redirect or proxy")
    if config.redis.timeout <= 0:
        raise ConfigError("redis.timeout", "must be positive")
    if config.redis.lock_ttl < 0.2:
        raise ConfigError("redis.lock_ttl", "must be at least 0.2 seconds")
    if config.redis.url and not re.match(r"^(redis|rediss|unix)://", config.redis.url):
        raise ConfigError("redis.url", "must start with redis://, rediss:// or unix://")
    if config.auth.algorithm not in ("HS256", "HS384", "HS512", "RS256", "ES256"):
        raise ConfigError("auth.algorithm", "must be HS256, HS384, HS512, RS256 or ES256")
    if config.auth.link_ttl <= 0:
        raise ConfigError("auth.link_ttl", "must be positive")
    for key, value in dataclasses.asdict(config.throttle).items():
        if value < 0:
            raise ConfigError(f"throttle.{key}", "must not be negative (0 means unlimited)")
    if config.throttle.lease_ttl <= 0:
        raise ConfigError("throttle.lease_ttl", "must be positive")
    for key in ("allow", "deny"):
        for pattern in getattr(config.filetypes, key):
            if not re.fullmatch(r"\*|[\w.+-]+/(\*|[\w.+-]+)", pattern):
                raise ConfigError(f"filetypes.{key}", f"{pattern!r} is not a MIME type, type/* or *")
    if config.api.idempotency_ttl <= 0:
        raise ConfigError("api.idempotency_ttl", "must be positive")
    if not (1 <= config.api.page_size <= config.api.max_page_size):
        raise ConfigError("api.page_size", "must be 1..api.max_page_size")
    validate_jobs(config)


def validate_jobs(config: Config) -> None:
    """The ``[jobs]`` and ``[hooks]`` checks."""
    j = config.jobs
    if j.workers < 0:
        raise ConfigError("jobs.workers", "must not be negative (0 disables the in-process consumer)")
    if j.max_attempts < 1:
        raise ConfigError("jobs.max_attempts", "must be at least 1")
    for key in ("visibility_timeout", "retry_delay", "max_retry_delay"):
        if getattr(j, key) <= 0:
            raise ConfigError(f"jobs.{key}", "must be positive")
    if config.hooks.timeout <= 0:
        raise ConfigError("hooks.timeout", "must be positive")
    if (config.hooks.url or config.hooks.pre_create_url) and not config.hooks.secret:
        raise ConfigError(
            "hooks.secret", "is required with hooks.url or hooks.pre_create_url (it signs each request)"
        )
    if config.hooks.pre_create_on_error not in ("reject", "allow"):
        raise ConfigError("hooks.pre_create_on_error", "must be reject or allow")
    if config.hooks.pre_create_url and not re.match(r"^https?://", config.hooks.pre_create_url):
        raise ConfigError("hooks.pre_create_url", "must be an http:// or https:// URL")
    for url in config.hooks.url:
        if not re.match(r"^https?://", url):
            raise ConfigError("hooks.url", f"{url!r} is not an http:// or https:// URL")


def is_loopback(host: str) -> bool:
    """True for loopback addresses and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_SIZE_RE = re.compile(r"\s*(\d+)\s*([kKmMgGtT]?)(?:i?[bB])?\s*")
_SIZE_MULT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``"8MiB"`` → 8388608; plain digits are bytes. Raises ValueError."""
    match = _SIZE_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"not a size: {text!r}")
    return int(match.group(1)) * _SIZE_MULT[match.group(2).lower()]


def _convert(key: str, kind: Any, value: Any) -> Any:
    """Convert a raw TOML/env/flag value to the declared field type."""
    name = key.rsplit(".", 1)[-1]
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"not a boolean: {value!r}")
        if kind is int:
            if isinstance(value, bool):
                raise ValueError("not an integer")
            if isinstance(value, int):
                return value
            return parse_size(str(value)) if name in SIZE_KEYS else int(str(value).strip())
        if kind is float:
            if isinstance(value, bool):
                raise ValueError("not a number")
            return float(value)
        if kind is str:
            return str(value)
        origin = typing.get_origin(kind)
        if origin is tuple:
            if isinstance(value, str):
                return tuple(v.strip() for v in value.split(",") if v.strip())
            if isinstance(value, (list, tuple)):
                return tuple(str(v) for v in value)
            raise ValueError("not a list")
        if isinstance(kind, types.UnionType):
            return value
    except (TypeError, ValueError) as exc:
        raise ConfigError(key, str(exc)) from None
    return value


def _read_secret_files(raw: dict[str, dict[str, Any]]) -> None:
    """Fill ``<key>`` from ``<key>_file`` when the secret itself is empty."""
    for section, values in raw.items():
        for key in list(values):
            if key.endswith("_file") and key[: -len("_file")] in SECRET_KEYS:
                target = key[: -len("_file")]
                path = values[key]
                if path and not values.get(target):
                    try:
                        values[target] = Path(path).read_text().strip()
                    except OSError as exc:
                        raise ConfigError(f"{section}.{key}", f"cannot read {path}: {exc}") from None


def load_config(
    *,
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the effective :class:`Config`.

    ``overrides`` are ``{"section.key": value}`` from the command line (argv
    parsing lives in the CLI). Raises :class:`ConfigError` naming the key for
    unknown keys, bad types and invalid values.
    """
    env = dict(os.environ if environ is None else environ)
    raw: dict[str, dict[str, Any]] = {name: {} for name in sections()}
    if config_file:
        try:
            data = tomllib.loads(Path(config_file).read_text())
        except OSError as exc:
            raise ConfigError("config", f"cannot read {config_file}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("config", f"{config_file} is not valid TOML: {exc}") from None
        for section, values in data.items():
            if section not in raw or not isinstance(values, dict):
                raise ConfigError(section, "unknown config section")
            for key, value in values.items():
                if key not in section_fields(section):
                    raise ConfigError(f"{section}.{key}", "unknown config key")
                raw[section][key] = value
    for section in raw:
        for key in section_fields(section):
            env_name = f"{ENV_PREFIX}{section}_{key}".upper()
            if env_name in env:
                raw[section][key] = env[env_name]
    for dotted, value in (overrides or {}).items():
        section, key = dotted.split(".", 1)
        if section not in raw or key not in section_fields(section):
            raise ConfigError(dotted, "unknown config key")
        raw[section][key] = value
    _read_secret_files(raw)
    built: dict[str, Any] = {}
    for section, cls in sections().items():
        kinds = section_fields(section)
        values = {k: _convert(f"{section}.{k}", kinds[k], v) for k, v in raw[section].items()}
        built[section] = cls(**values)
    return Config(**built)


def describe(config: Config) -> dict[str, dict[str, Any]]:
    """The effective config as plain data with secrets masked."""
    out: dict[str, dict[str, Any]] = {}
    for section in sections():
        values = dataclasses.asdict(getattr(config, section))
        for key in values:
            if key in SECRET_KEYS and values[key]:
                values[key] = "***"
            elif isinstance(values[key], tuple):
                values[key] = list(values[key])
        out[section] = values
    return out


def env_name(section: str, key: str) -> str:
    """The environment variable of ``section.key``."""
    return f"{ENV_PREFIX}{section}_{key}".upper()
