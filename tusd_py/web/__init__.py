"""The upload page at ``/`` (SPEC §10): static assets shipped as package data.

:class:`WebAssets` reads ``tusd_py/web/static/`` once at startup and serves it
from memory; each asset has a strong content hash used as its ETag and as the
``?v=`` cache-buster of the URLs the page refers to, so hashed URLs can be
cached for a year while the page itself is revalidated on every load.
"""

from tusd_py.web.assets import CSP, STATIC_PREFIX, Asset, WebAssets

__all__ = ["CSP", "STATIC_PREFIX", "Asset", "WebAssets"]
