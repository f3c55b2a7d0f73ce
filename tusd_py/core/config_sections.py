"""The config schema: one frozen dataclass per ``[section]`` of the TOML file.

Each field is one key: its name, type and default, with a ``#:`` comment
saying what it does (``conf/tusd-py.toml`` documents every key; a test
checks). :class:`tusd_py.core.config.Config` bundles the sections and
validates them; :func:`tusd_py.core.config.load_config` fills them from
TOML, environment and command line. Nothing here reads files or env.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20
GIB = 1 << 30


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
    #: Finished jobs (and the rows tables they published) are deleted this long after they ended.
    retention: float = 30 * 86400.0


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
