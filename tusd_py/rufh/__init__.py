"""IETF "Resumable Uploads for HTTP" (draft-ietf-httpbis-resumable-upload) beside tus 1.0.

The draft protocol is another way into the same uploads: requests detected
here (:func:`tusd_py.rufh.version.detect`) are served by :mod:`handlers.rufh`
through the same :class:`~tusd_py.core.service.UploadService`, storage, state,
locks, auth and throttling as tus. This package holds what has no I/O:
version detection, structured-field parsing and serialisation (``http_sf``),
problem details (RFC 9457) and digest fields (RFC 9530).
"""
