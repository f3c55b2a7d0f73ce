"""The client subcommands: ``upload``, ``status``, ``ls``, ``download``.

::

    tusd-py upload FILE... --url URL [--token T] [--chunk-size 64MiB] [--parallel N]
                   [--checksum sha256|sha512|sha1|md5|crc32] [--metadata k=v ...]
    tusd-py status ID --url URL          (or: tusd-py status UPLOAD_URL)
    tusd-py ls --url URL [--state S] [--visibility V] [--json]
    tusd-py download ID [-o PATH] --url URL   (or: tusd-py download UPLOAD_URL)

``--url`` is the server's upload collection (``http://HOST:PORT/files/``);
``status`` and ``download`` do without it when given a full upload URL (the
collection is that URL without its last segment). The token comes from
``--token`` or ``$TUSD_PY_TOKEN`` and is sent as ``Authorization: Bearer``.
Resume state lives in ``$XDG_CACHE_HOME/tusd-py/resume.json``. ``upload``
prints one upload URL per file on stdout; ``status`` prints a JSON object;
``download`` prints the path written. Progress and events go to stderr (see
:mod:`tusd_py.cli.client.progress`).

Exit codes: 0 ok, 1 local error (file unreadable, ...), 2 usage, 3 the
server refused the credentials (401/403), 4 the server refused the request
(404 on create, 410, 413, 415, ...), 5 gave up after retries, 130 interrupted
(Ctrl-C), 143 terminated (SIGTERM). Both interruptions cancel every part, print
the resume hint and keep the resume state.

Each error is printed once on stderr, as a plain line; with ``--progress json``
an ``error`` event with its status, code and exit code comes before it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import FrameType
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

from tusd_py.cli.args import Command
from tusd_py.cli.client.download import Download
from tusd_py.cli.client.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    Cancelled,
    ClientError,
    PermanentError,
    Terminated,
    UsageError,
)
from tusd_py.cli.client.filejob import FileUpload, UploadOptions
from tusd_py.cli.client.listing import Lister, describe_item, upload_url
from tusd_py.cli.client.progress import Reporter, make_reporter
from tusd_py.cli.client.resume_store import ResumeStore, default_cache_dir
from tusd_py.cli.client.retry import BackoffPolicy
from tusd_py.cli.client.transport import HttpTransport
from tusd_py.cli.client.tus import TusSession
from tusd_py.cli.client.uploader import CHECKSUM_ALGORITHMS, SystemClock
from tusd_py.core.config import parse_size

_META_KEY = re.compile(r"[!-+\--~]+")  # printable ASCII without space and comma
EXIT_CODES_HELP = (
    "exit codes: 0 ok, 1 local error, 2 usage, 3 credentials refused (401/403), "
    "4 request refused (404/410/413/415...), 5 gave up after retries, 130 interrupted (Ctrl-C), "
    "143 terminated (SIGTERM)"
)


def _size(text: str) -> int:
    try:
        value = parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 8MiB, 1048576)") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1 byte")
    return value


def _metadata(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not _META_KEY.fullmatch(key):
        raise argparse.ArgumentTypeError(
            f"metadata must be KEY=VALUE with a key without spaces or commas: {text!r}"
        )
    return key, value


def _common(parser: argparse.ArgumentParser, *, url_optional: bool = False) -> None:
    parser.add_argument(
        "--url",
        required=not url_optional,
        help="the server's upload collection, e.g. http://127.0.0.1:8080/files/"
        + (" (not needed when ID is a full upload URL)" if url_optional else ""),
    )
    parser.add_argument("--token", default=None, help="bearer token (default: $TUSD_PY_TOKEN)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="give up on a silent connection after this long (default 30)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=10,
        metavar="N",
        help="consecutive failed attempts without progress before giving up (default 10)",
    )
    parser.add_argument(
        "--retry-delay",
        type=float,
        default=0.25,
        metavar="SECONDS",
        help="first retry delay; doubles per failure, with jitter, up to 30 s (default 0.25)",
    )
    parser.add_argument(
        "--progress",
        choices=("auto", "bar", "json", "none"),
        default="auto",
        help="progress on stderr: bar on a terminal, JSON lines otherwise (default auto)",
    )
    parser.epilog = EXIT_CODES_HELP


def _upload_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE")
    _common(parser)
    parser.add_argument(
        "--chunk-size",
        type=_size,
        default=None,
        metavar="SIZE",
        help="bytes per PATCH (default 64MiB, 8MiB with --checksum)",
    )
    parser.add_argument(
        "--parallel",
        type=int,
        default=1,
        metavar="N",
        help=(
            "split each file into N partial uploads sent at once, then concatenate; one creation "
            "per file, N uploads at once (keep N within your tier's limit: basic 5)"
        ),
    )
    parser.add_argument(
        "--checksum", choices=CHECKSUM_ALGORITHMS, default=None, help="send Upload-Checksum with every PATCH"
    )
    parser.add_argument(
        "--metadata",
        type=_metadata,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Upload-Metadata pair (repeatable); filename is set from the file name",
    )


def _status_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", metavar="ID", help="upload id or URL")
    _common(parser, url_optional=True)


def _ls_args(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--state", default=None, help="only uploads in this state")
    parser.add_argument("--visibility", choices=("public", "private"), default=None)
    parser.add_argument("--limit", type=int, default=100, help="page size (default 100)")
    parser.add_argument("--json", action="store_true", help="one JSON object per upload")


def _download_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", metavar="ID", help="upload id or URL")
    parser.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="PATH",
        help="file or directory to write (default: the upload's filename)",
    )
    _common(parser, url_optional=True)


def endpoint_of(url: str | None, ident: str | None) -> str:
    """The upload collection: ``url`` (``--url``), else the one a full upload
    URL ``ident`` lives in (``http://h/files/ID`` -> ``http://h/files/``)."""
    if url:
        return url if url.endswith("/") else url + "/"
    parts = urlsplit(ident or "")
    path = parts.path.rstrip("/")
    if parts.scheme not in ("http", "https") or not parts.netloc or "/" not in path:
        raise UsageError(
            "--url is needed unless ID is a full upload URL, e.g. "
            "`tusd-py status http://127.0.0.1:8080/files/ID` or `... ID --url http://127.0.0.1:8080/files/`"
        )
    return urlunsplit((parts.scheme, parts.netloc, path.rsplit("/", 1)[0] + "/", "", ""))


class Runtime:
    """What every client command needs, built once from the parsed arguments."""

    def __init__(self, args: argparse.Namespace, environ: Mapping[str, str], stderr: IO[str]) -> None:
        if args.timeout <= 0 or args.retries < 0 or args.retry_delay < 0:
            raise ClientError("--timeout must be positive, --retries and --retry-delay not negative")
        self.endpoint: str = endpoint_of(args.url, getattr(args, "id", None))
        self.token: str | None = args.token or environ.get("TUSD_PY_TOKEN") or None
        self.timeout: float = args.timeout
        self.policy = BackoffPolicy(initial=args.retry_delay, max_attempts=args.retries)
        self.cancel = threading.Event()
        self.clock = SystemClock(self.cancel)
        self.reporter: Reporter = make_reporter(args.progress, stderr)
        self.store = ResumeStore(default_cache_dir(environ))

        self._transports: list[HttpTransport] = []

    def transport(self) -> HttpTransport:
        transport = HttpTransport(timeout=self.timeout)
        self._transports.append(transport)
        return transport

    def close(self) -> None:
        self.reporter.close()
        for transport in self._transports:
            transport.close()

    def session(self) -> TusSession:
        return TusSession(self.transport(), token=self.token)


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated` in the main thread (as
    SIGINT raises ``KeyboardInterrupt``); the previous handler comes back after.
    Outside the main thread (where handlers cannot be set) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _run(args: argparse.Namespace, body: Callable[[Runtime], int]) -> int:
    """Run a command body; every failure becomes a message and an exit code."""
    with sigterm_raises():
        return _run_body(args, body)


def _run_body(args: argparse.Namespace, body: Callable[[Runtime], int]) -> int:
    stderr = sys.stderr
    runtime: Runtime | None = None
    try:
        runtime = Runtime(args, os.environ, stderr)
        return body(runtime)
    except ClientError as exc:
        if runtime is None:
            print(f"tusd-py {args.command}: {exc}", file=stderr, flush=True)
        else:
            _report(runtime, args.command, exc)
        return exc.exit_code
    except (KeyboardInterrupt, Cancelled, Terminated) as exc:
        if runtime is not None:
            runtime.cancel.set()
        terminated = isinstance(exc, Terminated)
        print(
            f"tusd-py {args.command}: interrupted{' (SIGTERM)' if terminated else ''}; "
            "run the same command again to resume",
            file=stderr,
            flush=True,
        )
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    finally:
        if runtime is not None:
            runtime.close()


def _report(runtime: Runtime, command: str, exc: ClientError, file: str | None = None) -> None:
    """An ``error`` event (for programs: status, code, exit code) and the
    message, once, as a human-readable line on stderr."""
    fields: dict[str, Any] = {"exit_code": exc.exit_code}
    if file is not None:
        fields["file"] = file
    if isinstance(exc, PermanentError):
        fields.update(status=exc.status, code=exc.code)
    runtime.reporter.event("error", fields)
    runtime.reporter.message(f"tusd-py {command}: {exc}")


def _upload(args: argparse.Namespace) -> int:
    def body(rt: Runtime) -> int:
        if not 1 <= args.parallel <= 64:
            raise ClientError("--parallel must be between 1 and 64")
        chunk = args.chunk_size or ((8 << 20) if args.checksum else (64 << 20))
        options = UploadOptions(
            endpoint=rt.endpoint,
            token=rt.token,
            chunk_size=chunk,
            parallel=args.parallel,
            checksum=args.checksum,
            metadata=dict(args.metadata),
            policy=rt.policy,
        )
        exit_code = EXIT_OK
        for path in args.files:
            job = FileUpload(
                path,
                options,
                store=rt.store,
                reporter=rt.reporter,
                transport_factory=rt.transport,
                clock=rt.clock,
                cancel=rt.cancel,
            )
            try:
                print(job.run().url, flush=True)
            except ClientError as exc:  # report, go on with the next file, fail at the end
                _report(rt, args.command, exc, file=path)
                exit_code = exit_code or exc.exit_code
        return exit_code

    return _run(args, body)


def _status(args: argparse.Namespace) -> int:
    def body(rt: Runtime) -> int:
        lister = Lister(rt.session(), rt.endpoint, policy=rt.policy, clock=rt.clock, reporter=rt.reporter)
        print(json.dumps(lister.status(args.id), indent=2), flush=True)
        return EXIT_OK

    return _run(args, body)


def _ls(args: argparse.Namespace) -> int:
    def body(rt: Runtime) -> int:
        lister = Lister(rt.session(), rt.endpoint, policy=rt.policy, clock=rt.clock, reporter=rt.reporter)
        filters = {"state": args.state or "", "visibility": args.visibility or ""}
        for item in lister.pages(limit=max(1, args.limit), filters=filters):
            print(json.dumps(item) if args.json else describe_item(item), flush=True)
        return EXIT_OK

    return _run(args, body)


def _download(args: argparse.Namespace) -> int:
    def body(rt: Runtime) -> int:
        job = Download(
            rt.session(),
            upload_url(rt.endpoint, args.id),
            args.output,
            store=rt.store,
            reporter=rt.reporter,
            policy=rt.policy,
            clock=rt.clock,
            cancel=rt.cancel,
        )
        result = job.run()
        print(result.path, flush=True)
        return EXIT_OK

    return _run(args, body)


#: The client subcommands, in ``--help`` order.
COMMANDS: tuple[Command, ...] = (
    Command("upload", "upload files resumably (survives flaky links)", _upload_args, _upload),
    Command("status", "show an upload's offset and state", _status_args, _status),
    Command("ls", "list your uploads", _ls_args, _ls),
    Command("download", "download a complete upload (resumes with Range)", _download_args, _download),
)
