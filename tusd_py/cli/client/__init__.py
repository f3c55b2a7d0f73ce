"""The ``tusd-py`` client: ``upload`` (resumable, survives flaky links), ``status``, ``ls``, ``download``.

Module map:

* :mod:`~tusd_py.cli.client.commands` — argument parsing, exit codes, wiring.
* :mod:`~tusd_py.cli.client.filejob` — one file: resume store, creation, parallel parts, concatenation.
* :mod:`~tusd_py.cli.client.uploader` — the resumable PATCH loop of one byte range; checksums.
* :mod:`~tusd_py.cli.client.tus` — tus requests as method calls.
* :mod:`~tusd_py.cli.client.transport` — HTTP/1.1 on ``http.client`` (streaming bodies, 100-continue).
* :mod:`~tusd_py.cli.client.retry` — backoff policy with jitter, status classification.
* :mod:`~tusd_py.cli.client.resume_store` — the per-user cache of upload URLs (atomic writes).
* :mod:`~tusd_py.cli.client.progress` — tqdm bars or JSON-lines events.
* :mod:`~tusd_py.cli.client.download`, :mod:`~tusd_py.cli.client.listing` — ``download``, ``status``, ``ls``.
* :mod:`~tusd_py.cli.client.errors` — the client's exception tree and exit codes.
"""
