"""``tusd-py status`` and ``tusd-py ls``: read-only views of a server's uploads.

``status ID`` asks ``GET /index-status/{id}`` (SPEC §6: offset, percent,
state, storage, jobs, ...). A server without that route (404 ``ERR_NOT_FOUND``
or 405) gets a tus ``HEAD`` instead, reported in the same shape as far as HEAD
can tell (``file_id, upload_url, filename, size, offset, percent, state``).

``ls`` pages through ``GET <endpoint>?limit=N[&cursor=C][&state=S][&visibility=V]``.
The expected answer is ``{"items": [...], "next_cursor": "..." | null}``; a bare
JSON list and the key spellings ``files``/``uploads``/``data`` and
``cursor``/``next`` are accepted too. Each item is an object like the
index-status one (``file_id`` or ``id``, ``filename``, ``size``/``length``,
``offset``, ``state``). Paging stops when no cursor comes back (at most
``max_pages`` pages). When the listing answers 404/405, an ``OPTIONS`` tells
a tus endpoint that cannot list (advice: upgrade the server) from a URL that is
no tus endpoint at all, e.g. the server's root without ``/files/`` (advice: the
collection URL to use instead).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from tusd_py.cli.client.errors import (
    MISSING_UPLOAD_ADVICE,
    ClientError,
    PermanentError,
    UploadMissing,
)
from tusd_py.cli.client.progress import FileProgress, Reporter
from tusd_py.cli.client.retry import BackoffPolicy
from tusd_py.cli.client.tus import TusSession, status_error
from tusd_py.cli.client.uploader import Clock, Retrier

_ITEM_KEYS = ("items", "files", "uploads", "data")
_CURSOR_KEYS = ("next_cursor", "cursor", "next")


def upload_url(endpoint: str, id_or_url: str) -> str:
    """The upload URL for an id (relative to ``endpoint``) or a full URL."""
    if "://" in id_or_url:
        return id_or_url
    return urljoin(endpoint if endpoint.endswith("/") else endpoint + "/", id_or_url.strip("/"))


def upload_id(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


class NotJSONError(PermanentError):
    """A successful answer whose body is not JSON: not a tus server's document."""


class Lister:
    """``status`` and ``ls`` against one endpoint, with retries."""

    def __init__(
        self, session: TusSession, endpoint: str, *, policy: BackoffPolicy, clock: Clock, reporter: Reporter
    ) -> None:
        self.session = session
        self.endpoint = endpoint
        self.retrier = Retrier(policy, clock, FileProgress(reporter, endpoint, 0))

    def _get_json(self, url: str, what: str) -> Any:
        def fetch() -> Any:
            response = self.session.get(url, {"Accept": "application/json"})
            if response.status != 200:
                raise status_error(response, "GET", url)
            try:
                return response.json()
            except ValueError:
                # A 200 that is not JSON is some other resource (a web page, a
                # proxy's page): retrying will not change it.
                raise NotJSONError(
                    f"GET {url} answered {response.status}, but not with JSON", status=200
                ) from None

        return self.retrier.call(fetch, what)

    def status(self, id_or_url: str) -> dict[str, Any]:
        url = upload_url(self.endpoint, id_or_url)
        ident = upload_id(url)
        index_url = urljoin(self.endpoint, f"/index-status/{ident}")
        what = f"status of {ident}"
        try:
            result = self._get_json(index_url, what)
            if isinstance(result, dict):
                return result
        except PermanentError as exc:
            if exc.status in (404, 410) and exc.code not in (None, "ERR_NOT_FOUND"):
                # The route exists and says the upload does not: name that, not the URL.
                raise PermanentError(
                    str(exc).split(" What to do:", 1)[0] + f" What to do: {MISSING_UPLOAD_ADVICE}.",
                    status=exc.status,
                    code=exc.code,
                ) from None
            if exc.status not in (404, 405):
                raise
        try:
            head = self.retrier.call(lambda: self.session.head(url), what)
        except UploadMissing as exc:
            raise PermanentError.from_status(exc, what, MISSING_UPLOAD_ADVICE) from None
        percent = None
        if head.length:
            percent = round(100.0 * (head.offset or 0) / head.length, 2)
        elif head.length == 0:
            percent = 100.0
        return {
            "file_id": ident,
            "upload_url": url,
            "filename": head.metadata.get("filename"),
            "size": head.length,
            "offset": head.offset,
            "percent": percent,
            "state": "complete" if head.complete else "uploading",
            "concat": head.concat,
            "metadata": head.metadata,
        }

    def pages(
        self, *, limit: int = 100, filters: Mapping[str, str] | None = None, max_pages: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """Every listed upload, page after page."""
        cursor: str | None = None
        for _ in range(max_pages):
            query: dict[str, str] = {"limit": str(limit)}
            query.update({k: v for k, v in (filters or {}).items() if v})
            if cursor:
                query["cursor"] = cursor
            url = f"{self.endpoint}?{urlencode(query)}"
            try:
                page = self._get_json(url, "listing uploads")
            except PermanentError as exc:
                if exc.status in (404, 405) or isinstance(exc, NotJSONError):
                    raise self._not_listing(exc.status or 0) from None
                raise
            items, cursor = _split_page(page)
            yield from items
            if not cursor:
                return

    def is_tus_endpoint(self) -> bool:
        """Whether ``OPTIONS`` on the endpoint answers like a tus server (``Tus-Version``)."""
        try:
            headers = self.session.options(self.endpoint)
        except ClientError:
            return False
        return bool(headers.get("Tus-Version"))

    def _not_listing(self, status: int) -> PermanentError:
        """The error for a listing GET that answered ``status`` (404/405)."""
        if self.is_tus_endpoint():
            return PermanentError(
                f"the tus server at {self.endpoint} does not list uploads (GET answered {status}). "
                "What to do: upgrade the server to one with the REST listing (GET /files/).",
                status=status,
            )
        return PermanentError(
            f"{self.endpoint} does not look like a tus upload endpoint (GET answered {status}, "
            "OPTIONS names no Tus-Version). What to do: pass the server's upload collection "
            f"with --url, e.g. {suggest_collection(self.endpoint)}",
            status=status,
        )


def suggest_collection(endpoint: str) -> str:
    """The upload collection tusd-py serves by default (``/files/``) on the host of ``endpoint``."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "http://HOST:PORT/files/"
    suggestion = f"{parts.scheme}://{parts.netloc}/files/"
    return suggestion if suggestion != endpoint else "http://HOST:PORT/files/"


def _split_page(page: Any) -> tuple[list[dict[str, Any]], str | None]:
    if isinstance(page, list):
        return [x for x in page if isinstance(x, dict)], None
    if not isinstance(page, dict):
        raise ClientError(f"unexpected listing answer (not a JSON list or object): {json.dumps(page)[:200]}")
    items: list[Any] = []
    for key in _ITEM_KEYS:
        if isinstance(page.get(key), list):
            items = page[key]
            break
    cursor = None
    for key in _CURSOR_KEYS:
        value = page.get(key)
        if isinstance(value, str | int) and value != "":
            cursor = str(value)
            break
    return [x for x in items if isinstance(x, dict)], cursor


def describe_item(item: Mapping[str, Any]) -> str:
    """One ``ls`` line: ``ID  STATE  OFFSET/SIZE  FILENAME``."""
    ident = item.get("file_id") or item.get("id") or "?"
    state = item.get("state") or "?"
    size = item.get("size", item.get("length"))
    offset = item.get("offset")
    amount = f"{offset if offset is not None else '?'}/{size if size is not None else '?'}"
    return f"{ident}  {state:<10}  {amount:>23}  {item.get('filename') or ''}".rstrip()
