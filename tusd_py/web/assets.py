"""Loading, hashing and rendering the upload page's static assets.

Contract:

* :meth:`WebAssets.load` reads every file of the ``static`` package folder
  (no subfolders) into memory; a missing folder is a packaging bug and
  raises ``FileNotFoundError`` at startup, never on a request.
* Every :class:`Asset` carries a strong ETag (a prefix of the sha256 of its
  bytes); :meth:`WebAssets.url` names an asset with that hash as ``?v=``,
  and only a request whose ``v`` matches may be cached as immutable.
* :meth:`WebAssets.page` renders ``index.html`` for one config: the tus
  endpoint (``server.base_path``) and whether auth is on go into ``<meta>``
  tags (no inline script, so the page works under :data:`CSP`), asset URLs
  into ``{{url:NAME}}`` placeholders. The rendered page is hashed as well.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

from tusd_py.core.config import Config

#: URL prefix of the static assets.
STATIC_PREFIX = "/web/static/"
#: Content-Security-Policy of the page and its assets: everything from this origin only.
CSP = "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'self'"
PAGE_NAME = "index.html"
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
_PLACEHOLDER = re.compile(r"\{\{(url:[A-Za-z0-9._-]+|base_path|auth)\}\}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}")


@dataclass(frozen=True, slots=True)
class Asset:
    """One servable file: bytes, type and strong validator."""

    name: str
    body: bytes
    content_type: str
    digest: str

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'

    @classmethod
    def of(cls, name: str, body: bytes) -> Asset:
        suffix = name[name.rfind(".") :] if "." in name else ""
        kind = _CONTENT_TYPES.get(suffix, "application/octet-stream")
        return cls(name, body, kind, hashlib.sha256(body).hexdigest()[:20])


class WebAssets:
    """The page's static files, immutable after :meth:`load`."""

    def __init__(self, assets: Mapping[str, Asset]) -> None:
        self._assets: Mapping[str, Asset] = MappingProxyType(dict(assets))

    @classmethod
    def load(cls) -> WebAssets:
        """Read ``tusd_py/web/static/*`` (package data)."""
        folder = resources.files("tusd_py.web").joinpath("static")
        found: dict[str, Asset] = {}
        for entry in folder.iterdir():
            if entry.is_file() and _NAME.fullmatch(entry.name):
                found[entry.name] = Asset.of(entry.name, entry.read_bytes())
        if PAGE_NAME not in found:
            raise FileNotFoundError(
                f"tusd_py/web/static/{PAGE_NAME} is missing (package data not installed?)"
            )
        return cls(found)

    def get(self, name: str) -> Asset | None:
        """The asset called ``name`` (the page template is not served raw)."""
        if name == PAGE_NAME:
            return None
        return self._assets.get(name)

    def url(self, name: str) -> str:
        """The cache-busting URL of asset ``name``; raises ``KeyError`` if unknown."""
        return f"{STATIC_PREFIX}{name}?v={self._assets[name].digest}"

    def page(self, config: Config) -> Asset:
        """``index.html`` rendered for ``config``."""
        template = self._assets[PAGE_NAME].body.decode()
        values = {
            "base_path": config.server.base_path,
            "auth": "on" if config.auth.enabled else "off",
        }

        def fill(match: re.Match[str]) -> str:
            key = match.group(1)
            if key.startswith("url:"):
                return html.escape(self.url(key[4:]))
            return html.escape(values[key])

        return Asset.of(PAGE_NAME, _PLACEHOLDER.sub(fill, template).encode())
