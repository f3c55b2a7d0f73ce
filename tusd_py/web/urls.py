"""URLs of the upload page printed by ``serve`` and ``tusd-py token --link``.

A sign-in link carries the token in the fragment (``#token=...``): browsers
never send a fragment to a server, so it stays out of access logs and
``Referer`` headers; the page moves it to sessionStorage and removes it
from the address bar.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import quote


def page_url(host: str, port: int) -> str:
    """``http://HOST:PORT/``; an unspecified address (``0.0.0.0``, ``::``) becomes loopback."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"http://{host}:{port}/"
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    shown = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{shown}:{port}/"


def sign_in_link(page: str, token: str) -> str:
    """``page`` with ``#token=TOKEN`` (any fragment of ``page`` replaced)."""
    return f"{page.split('#', 1)[0]}#token={quote(token, safe='')}"
