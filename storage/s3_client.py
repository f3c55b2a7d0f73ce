"""The S3 boundary: the calls tusd-py makes, run off the event loop, with
botocore's exceptions translated into :mod:`tusd_py.core.errors`.

* :class:`S3Client` lists only the boto3 client methods used (tusd's
  ``S3API`` idea), so tests and other SDKs can stand in.
* :func:`map_s3_errors` is the one translation point: unreachable endpoints,
  timeouts and throttling become :class:`errors.StorageUnavailable` (503 with
  ``Retry-After``); configuration problems (no such bucket, bad credentials,
  access denied) become :class:`errors.StorageError` (500) naming the bucket
  and the operation.
* :class:`AsyncS3` runs every call in a dedicated thread pool, never on the
  IOLoop, and offers the few typed operations the relay needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import boto3
import botocore.config
import botocore.exceptions

from tusd_py.core import errors
from tusd_py.core.config_sections import S3Config

log = logging.getLogger("tusd_py.storage")

T = TypeVar("T")

#: ClientError codes meaning "try again later".
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "ServiceUnavailable",
        "InternalError",
        "RequestLimitExceeded",
        "TooManyRequests",
        "503",
        "500",
    }
)
#: ClientError codes meaning the server's S3 configuration is wrong.
CONFIG_CODES = frozenset(
    {
        "NoSuchBucket",
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AuthorizationHeaderMalformed",
        "InvalidBucketName",
        "PermanentRedirect",
        "301",
        "403",
    }
)
#: Retry-After (seconds) suggested while S3 is unavailable.
RETRY_AFTER = 5.0


class S3Client(Protocol):
    """The subset of boto3's S3 client used by tusd-py (keyword arguments as boto3)."""

    def create_multipart_upload(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def upload_part(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def upload_part_copy(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def complete_multipart_upload(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def abort_multipart_upload(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def list_multipart_uploads(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def put_object(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def get_object(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def head_object(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def delete_object(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def head_bucket(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def generate_presigned_url(self, ClientMethod: str, Params: Mapping[str, Any], ExpiresIn: int) -> str: ...


def error_code(exc: botocore.exceptions.ClientError) -> str:
    """The S3 error code of a ClientError ("" if absent)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: botocore.exceptions.ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def translate(exc: Exception, operation: str, bucket: str) -> errors.TusError:
    """The :mod:`tusd_py.core.errors` value for a botocore exception."""
    where = f"S3 {operation} on bucket {bucket!r}"
    if isinstance(exc, botocore.exceptions.ClientError):
        code = error_code(exc)
        status = _status(exc)
        if code in TRANSIENT_CODES or status in (429, 500, 502, 503, 504):
            return errors.StorageUnavailable(
                f"{where} failed temporarily ({code or status}); retry later", retry_after=RETRY_AFTER
            )
        if code in CONFIG_CODES or status in (301, 403):
            return errors.StorageError(
                f"{where} was refused ({code or status}): check the [s3] bucket, region and credentials"
            )
        return errors.StorageError(f"{where} failed: {code or status}")
    if isinstance(
        exc,
        (
            botocore.exceptions.ConnectionError,
            botocore.exceptions.HTTPClientError,
            botocore.exceptions.ResponseStreamingError,
            botocore.exceptions.IncompleteReadError,
        ),
    ):
        return errors.StorageUnavailable(
            f"{where} failed: the S3 endpoint is unreachable; retry later", retry_after=RETRY_AFTER
        )
    if isinstance(
        exc,
        (
            botocore.exceptions.NoCredentialsError,
            botocore.exceptions.PartialCredentialsError,
            botocore.exceptions.NoRegionError,
            botocore.exceptions.CredentialRetrievalError,
        ),
    ):
        return errors.StorageError(f"{where} failed: S3 credentials or region are not configured ({exc})")
    return errors.StorageError(f"{where} failed: {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def map_s3_errors(operation: str, bucket: str) -> Iterator[None]:
    """Translate botocore exceptions raised inside into :mod:`tusd_py.core.errors`."""
    try:
        yield
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise translate(exc, operation, bucket) from exc


def build_client(config: S3Config, *, quick: bool = False) -> S3Client:
    """A boto3 S3 client from ``[s3]`` (credentials from config or the boto3 chain).

    ``quick``: for calls without a large body. botocore also retries read
    timeouts, so a silent endpoint would cost ``max_attempts`` x ``timeout``;
    this client makes at most 2 attempts of ``timeout / 2`` each, so a
    request waiting on it is answered (503) after about ``[s3] timeout``."""
    attempts, timeout = (
        (min(2, config.max_attempts), config.timeout / 2)
        if quick
        else (
            config.max_attempts,
            config.timeout,
        )
    )
    options: dict[str, Any] = {
        "retries": {"max_attempts": attempts, "mode": "standard"},
        "max_pool_connections": config.concurrency + 4,
        "connect_timeout": timeout,
        "read_timeout": timeout,
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
        "s3": {"addressing_style": "path" if config.path_style else "auto"},
    }
    kwargs: dict[str, Any] = {"config": botocore.config.Config(**options)}
    if config.region:
        kwargs["region_name"] = config.region
    if config.endpoint_url:
        kwargs["endpoint_url"] = config.endpoint_url
    if config.access_key_id:
        kwargs["aws_access_key_id"] = config.access_key_id
        kwargs["aws_secret_access_key"] = config.secret_access_key
    session = boto3.session.Session()
    with map_s3_errors("client setup", config.bucket):
        return cast(S3Client, session.client("s3", **kwargs))


@dataclass(frozen=True, slots=True)
class MultipartListing:
    """One multipart upload in progress, as ListMultipartUploads reports it."""

    key: str
    upload_id: str
    initiated: float


class AsyncS3:
    """The relay's S3 operations on one bucket, each run in ``executor``.

    Calls a live S3 answers at once (create, abort, head, delete, get, list)
    go through ``quick`` (see :func:`build_client` with ``quick=True``), so a
    request waiting on one gets its 503 after about ``[s3] timeout`` when the
    endpoint does not answer; part bodies and assembly go through ``client``
    with the full retry budget. ``quick`` defaults to ``client``."""

    def __init__(
        self, client: S3Client, bucket: str, executor: ThreadPoolExecutor, quick: S3Client | None = None
    ) -> None:
        self.client = client
        self.quick = quick or client
        self.bucket = bucket
        self._executor = executor

    async def run(self, operation: str, fn: Callable[..., T], /, **kwargs: Any) -> T:
        """Call ``fn(**kwargs)`` in the executor with errors translated."""
        loop = asyncio.get_running_loop()
        with map_s3_errors(operation, self.bucket):
            return await loop.run_in_executor(self._executor, functools.partial(fn, **kwargs))

    async def create_multipart(self, key: str, content_type: str | None = None) -> str:
        """CreateMultipartUpload; returns its UploadId."""
        extra = {"ContentType": content_type} if content_type else {}
        res = await self.run(
            "CreateMultipartUpload", self.quick.create_multipart_upload, Bucket=self.bucket, Key=key, **extra
        )
        return str(res["UploadId"])

    async def upload_part(self, key: str, upload_id: str, number: int, path: Path, size: int) -> str:
        """UploadPart of ``size`` bytes read from ``path``; returns the ETag."""

        def send() -> Mapping[str, Any]:
            with open(path, "rb") as body:
                return self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=body,
                    ContentLength=size,
                )

        res = await self.run("UploadPart", send)
        return str(res["ETag"])

    async def upload_part_copy(
        self, key: str, upload_id: str, number: int, source_key: str, start: int, end: int
    ) -> str:
        """UploadPartCopy of bytes ``start..end-1`` of ``source_key``; returns the ETag."""
        res = await self.run(
            "UploadPartCopy",
            self.client.upload_part_copy,
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            CopySource={"Bucket": self.bucket, "Key": source_key},
            CopySourceRange=f"bytes={start}-{end - 1}",
        )
        return str(res["CopyPartResult"]["ETag"])

    async def complete(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> None:
        """CompleteMultipartUpload with ``(number, etag)`` pairs in order."""
        await self.run(
            "CompleteMultipartUpload",
            self.client.complete_multipart_upload,
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]},
        )

    async def abort(self, key: str, upload_id: str) -> None:
        """AbortMultipartUpload; an upload already gone is not an error."""
        try:
            await self.run(
                "AbortMultipartUpload",
                self.quick.abort_multipart_upload,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
            )
        except errors.StorageError as exc:
            if not is_missing(exc):
                raise

    async def put_file(self, key: str, path: Path | None, size: int, metadata: Mapping[str, str]) -> None:
        """PutObject of ``size`` bytes from ``path`` (empty object if None)."""

        def send() -> Mapping[str, Any]:
            if path is None:
                return self.client.put_object(Bucket=self.bucket, Key=key, Body=b"", Metadata=dict(metadata))
            with open(path, "rb") as body:
                return self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=body, ContentLength=size, Metadata=dict(metadata)
                )

        await self.run("PutObject", send)

    async def head(self, key: str) -> tuple[int, Mapping[str, str]] | None:
        """``(size, metadata)`` of ``key``, or None if it does not exist."""
        try:
            res = await self.run("HeadObject", self.quick.head_object, Bucket=self.bucket, Key=key)
        except errors.StorageError as exc:
            if is_missing(exc):
                return None
            raise
        return int(res["ContentLength"]), dict(res.get("Metadata") or {})

    async def delete(self, key: str) -> None:
        """DeleteObject (missing keys are fine)."""
        await self.run("DeleteObject", self.quick.delete_object, Bucket=self.bucket, Key=key)

    async def download(self, key: str, path: Path) -> int:
        """GetObject of ``key`` into the file ``path``; returns its size."""

        def fetch() -> int:
            res = self.client.get_object(Bucket=self.bucket, Key=key)
            body = res["Body"]
            size = 0
            try:
                with open(path, "wb") as out:
                    while block := body.read(1 << 20):
                        out.write(block)
                        size += len(block)
            finally:
                body.close()
            return size

        return await self.run("GetObject", fetch)

    async def read_range(self, key: str, start: int, end: int, block: int = 1 << 20) -> AsyncIterator[bytes]:
        """Stream bytes ``start..end`` (inclusive) of ``key`` in blocks."""
        res = await self.run(
            "GetObject", self.quick.get_object, Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end}"
        )
        body = res["Body"]
        try:
            remaining = end - start + 1
            while remaining > 0:
                data: bytes = await self.run("GetObject", body.read, amt=min(block, remaining))
                if not data:
                    raise errors.StorageError(f"S3 object {key!r} ended early")
                remaining -= len(data)
                yield data
        finally:
            body.close()

    async def list_multipart(self, prefix: str, limit: int = 10_000) -> list[MultipartListing]:
        """Multipart uploads in progress under ``prefix`` (at most ``limit``)."""
        found: list[MultipartListing] = []
        markers: dict[str, str] = {}
        while len(found) < limit:
            res = await self.run(
                "ListMultipartUploads",
                self.quick.list_multipart_uploads,
                Bucket=self.bucket,
                Prefix=prefix,
                **markers,
            )
            for item in res.get("Uploads", []):
                initiated = item.get("Initiated")
                stamp = initiated.timestamp() if isinstance(initiated, datetime) else 0.0
                found.append(MultipartListing(str(item["Key"]), str(item["UploadId"]), stamp))
            if not res.get("IsTruncated"):
                break
            markers = {
                "KeyMarker": str(res.get("NextKeyMarker", "")),
                "UploadIdMarker": str(res.get("NextUploadIdMarker", "")),
            }
        return found[:limit]

    async def head_bucket(self) -> None:
        """HeadBucket: raises unless the bucket is reachable and accessible."""
        await self.run("HeadBucket", self.quick.head_bucket, Bucket=self.bucket)

    async def presign_get(
        self, key: str, ttl: float, disposition: str | None, content_type: str | None
    ) -> str:
        """A presigned GET URL for ``key`` valid ``ttl`` seconds."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if disposition:
            params["ResponseContentDisposition"] = disposition
        if content_type:
            params["ResponseContentType"] = content_type
        return await self.run(
            "presign",
            self.client.generate_presigned_url,
            ClientMethod="get_object",
            Params=params,
            ExpiresIn=int(ttl),
        )


def is_missing(exc: errors.TusError) -> bool:
    """True if ``exc`` says the key or multipart upload does not exist."""
    cause = exc.__cause__
    if isinstance(cause, botocore.exceptions.ClientError):
        return error_code(cause) in ("NoSuchUpload", "NoSuchKey", "404", "NotFound") or _status(cause) == 404
    return False
