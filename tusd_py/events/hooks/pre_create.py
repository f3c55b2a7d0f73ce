"""The blocking ``pre-create`` hook (tusd's pre-create), ``[hooks] pre_create_url``.

Before an upload is created (tus POST and ``POST /index``; not a
concatenation's final, whose partials were each asked) the server POSTs ``{"id", "type": "pre-create",
"created_at", "data": {"owner", "tier", "size", "filename", "metadata",
"partial", "visibility"}}`` (``metadata`` decoded as UTF-8 text), signed with
``Tusd-Signature`` like the webhooks. The request is asynchronous: the IOLoop
serves other requests while the receiver thinks.

* 2xx: created; a JSON body ``{"metadata": {key: text | null}}`` rewrites the
  metadata (``null`` removes a key, other keys are set; the rest is kept).
* 4xx: refused with that status and the receiver's ``{"message"}`` (or text
  body) as :class:`errors.HookRejected`.
* anything else, no answer within ``[hooks] timeout``, or unreachable: by
  ``[hooks] pre_create_on_error``, "reject" answers 503 ``ERR_HOOK_UNAVAILABLE``
  (Retry-After), "allow" creates the upload unchanged (logged).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from tusd_py.core import errors, protocol
from tusd_py.core.config_sections import HooksConfig
from tusd_py.core.models import ConcatKind, Principal, UploadInfo
from tusd_py.events.hooks.signing import HEADER, signature
from tusd_py.events.hooks.webhooks import event_body

log = logging.getLogger("tusd_py.app")

#: Longest receiver message passed on to the client.
MAX_MESSAGE = 300


class PreCreateHook:
    """Calls the pre-create receiver (see module docstring); use :meth:`check`."""

    def __init__(self, config: HooksConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock

    def _payload(self, principal: Principal, info: UploadInfo) -> str:
        data = {
            "owner": principal.user,
            "tier": principal.tier,
            "size": info.length,
            "filename": info.filename,
            "metadata": {k: v.decode("utf-8", "replace") for k, v in info.metadata.items()},
            "partial": info.concat is ConcatKind.PARTIAL,
            "visibility": info.visibility,
        }
        _, body = event_body("pre-create", data, self.clock())
        return body

    async def check(self, principal: Principal, info: UploadInfo) -> UploadInfo:
        """``info`` as the receiver allows it; raises :class:`errors.HookRejected`
        or :class:`errors.HookUnavailable`."""
        body = self._payload(principal, info).encode()
        headers = {
            "Content-Type": "application/json",
            HEADER: signature(self.config.secret, body, int(self.clock())),
        }
        try:
            res = await AsyncHTTPClient().fetch(
                self.config.pre_create_url,
                method="POST",
                body=body,
                headers=headers,
                request_timeout=self.config.timeout,
                connect_timeout=self.config.timeout,
                raise_error=False,
                follow_redirects=False,
            )
        except HTTPClientError as exc:
            return self._unavailable(info, "no answer in time" if exc.code == 599 else f"failed: {exc}")
        except OSError as exc:
            return self._unavailable(info, f"unreachable: {exc}")
        if 200 <= res.code < 300:
            return rewrite(info, res.body or b"")
        if 400 <= res.code < 500:
            raise errors.HookRejected(message_of(res.body or b""), status=res.code)
        reason = "no answer in time" if res.code == 599 else f"answered {res.code}"
        return self._unavailable(info, reason)

    def _unavailable(self, info: UploadInfo, reason: str) -> UploadInfo:
        if self.config.pre_create_on_error == "allow":
            log.warning(
                "pre-create hook %s; upload allowed (pre_create_on_error = allow)", reason,
                extra={"event": "PreCreateHookFailed", "upload_id": info.id},
            )  # fmt: skip
            return info
        log.warning("pre-create hook %s; upload refused", reason, extra={"event": "PreCreateHookFailed"})
        raise errors.HookUnavailable(f"the pre-create hook {reason}; retry later", retry_after=5)


def message_of(body: bytes) -> str:
    """The receiver's reason: ``{"message": ...}`` or the text body (trimmed)."""
    text = body.decode("utf-8", "replace").strip()
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        text = value["message"]
    text = " ".join(text.split())[:MAX_MESSAGE]
    return f"refused by the pre-create hook: {text}" if text else errors.HookRejected.default_message


def rewrite(info: UploadInfo, body: bytes) -> UploadInfo:
    """``info`` with the metadata changes of a 2xx answer (none if no JSON object)."""
    try:
        value: Any = json.loads(body) if body.strip() else {}
    except ValueError:
        value = {}
    changes = value.get("metadata") if isinstance(value, dict) else None
    if not isinstance(changes, dict) or not changes:
        return info
    metadata = info.metadata
    for key, text in changes.items():
        if text is None:
            metadata.pop(str(key), None)
        else:
            metadata[str(key)] = str(text).encode()
    raw = protocol.encode_metadata(metadata)
    try:
        protocol.parse_metadata(raw)
    except errors.InvalidMetadata as exc:
        raise errors.HookUnavailable(
            f"the pre-create hook returned unusable metadata ({exc.message})"
        ) from None
    return info.replace(metadata_raw=raw)
