"""``map_s3_errors``: every botocore exception becomes a tusd_py error."""

from __future__ import annotations

import inspect
from typing import Any

import botocore.exceptions
import pytest

from storage.s3_client import map_s3_errors, translate
from tusd_py.core import errors


def _client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    response: Any = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return botocore.exceptions.ClientError(response, "UploadPart")


def _instances() -> list[Exception]:
    out: list[Exception] = []
    for _, cls in inspect.getmembers(botocore.exceptions, inspect.isclass):
        if not issubclass(cls, botocore.exceptions.BotoCoreError):
            continue
        exc = cls.__new__(cls)
        Exception.__init__(exc, "x")
        exc.kwargs = {}  # type: ignore[attr-defined]
        out.append(exc)
    return out


@pytest.mark.parametrize("exc", _instances(), ids=lambda e: type(e).__name__)
def test_every_botocore_error_is_translated(exc: Exception) -> None:
    with pytest.raises(errors.BackendError) as caught:
        with map_s3_errors("UploadPart", "bucket-x"):
            raise exc
    assert "bucket-x" in caught.value.message and "UploadPart" in caught.value.message
    assert caught.value.__cause__ is exc


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("SlowDown", 503, errors.StorageUnavailable),
        ("ServiceUnavailable", 503, errors.StorageUnavailable),
        ("InternalError", 500, errors.StorageUnavailable),
        ("RequestTimeout", 400, errors.StorageUnavailable),
        ("NoSuchBucket", 404, errors.StorageError),
        ("AccessDenied", 403, errors.StorageError),
        ("InvalidAccessKeyId", 403, errors.StorageError),
        ("NoSuchUpload", 404, errors.StorageError),
    ],
)
def test_client_errors_by_code(code: str, status: int, kind: type[errors.TusError]) -> None:
    err = translate(_client_error(code, status), "UploadPart", "b")
    assert type(err) is kind
    if kind is errors.StorageUnavailable:
        assert err.status == 503 and int(err.headers["Retry-After"]) >= 1
    else:
        assert err.status == 500 and "'b'" in err.message


def test_unreachable_endpoint_is_503() -> None:
    exc = botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    err = translate(exc, "PutObject", "b")
    assert err.status == 503 and "unreachable" in err.message and "Retry-After" in err.headers


def test_missing_credentials_name_the_configuration() -> None:
    err = translate(botocore.exceptions.NoCredentialsError(), "HeadBucket", "b")
    assert err.status == 500 and "credentials" in err.message
