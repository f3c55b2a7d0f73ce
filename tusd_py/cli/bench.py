"""``tusd-py bench``: measure a running tus server from the client side.

Scenarios (``--scenarios``, comma separated; default ``create,head,upload``):
``create`` (creations/s), ``head`` (HEADs/s on one upload), ``upload`` (one
upload of ``--size`` in one PATCH, MiB/s), ``chunked`` (the same in
``--chunk`` PATCHes), ``concurrent`` (``--conc-k`` uploads of
``--conc-size`` at once). With ``--server-pid`` (same host) the table also
shows the server's CPU seconds per GiB and peak RSS. Every upload the bench
created is terminated (DELETE) afterwards unless ``--keep``. Prints a table,
or one JSON object with ``--json``; exits 1 if any scenario had errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from tusd_py.cli.args import Command
from tusd_py.cli.benchmark import scenarios
from tusd_py.cli.benchmark.loadclient import LoadError
from tusd_py.core.config import parse_size

SCENARIO_NAMES = ("create", "head", "upload", "chunked", "concurrent")
DEFAULT_SCENARIOS = "create,head,upload"


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _scenario_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIO_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {', '.join(unknown) or text!r}; choose from {', '.join(SCENARIO_NAMES)}"
        )
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", required=True, help="creation URL of the server, e.g. http://127.0.0.1:8080/files/"
    )
    parser.add_argument("--token", help="bearer token sent as Authorization: Bearer TOKEN")
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="extra request header (repeatable)",
    )
    parser.add_argument(
        "--scenarios",
        type=_scenario_list,
        default=_scenario_list(DEFAULT_SCENARIOS),
        help=f"comma list of {', '.join(SCENARIO_NAMES)} (default {DEFAULT_SCENARIOS})",
    )
    parser.add_argument("--size", type=_size, default=1 << 30, help="upload/chunked: bytes (default 1GiB)")
    parser.add_argument("--chunk", type=_size, default=8 << 20, help="chunked/concurrent: PATCH size (8MiB)")
    parser.add_argument("--create-n", type=int, default=500, help="create: number of creations (500)")
    parser.add_argument("--head-n", type=int, default=2000, help="head: number of HEADs (2000)")
    parser.add_argument("--conc-k", type=int, default=50, help="concurrent: uploads at once (50)")
    parser.add_argument("--conc-size", type=_size, default=100 << 20, help="concurrent: bytes each (100MiB)")
    parser.add_argument("--server-pid", type=int, help="sample this local process's CPU and RSS from /proc")
    parser.add_argument("--keep", action="store_true", help="do not DELETE the uploads afterwards")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def headers_from_args(args: argparse.Namespace) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw in args.header:
        name, sep, value = raw.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"--header needs NAME:VALUE, got {raw!r}")
        headers[name.strip()] = value.strip()
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    return headers


def run_scenarios(args: argparse.Namespace, headers: Mapping[str, str]) -> list[scenarios.Result]:
    """Run the scenarios named in ``args`` in order; cleans up unless ``--keep``."""
    pid = args.server_pid
    plans: dict[str, Callable[[], scenarios.Result]] = {
        "create": lambda: scenarios.measure_create(args.url, headers, args.create_n, pid=pid),
        "head": lambda: scenarios.measure_head(args.url, headers, args.head_n, pid=pid),
        "upload": lambda: scenarios.measure_upload(args.url, headers, args.size, pid=pid),
        "chunked": lambda: scenarios.measure_upload(args.url, headers, args.size, chunk=args.chunk, pid=pid),
        "concurrent": lambda: scenarios.measure_concurrent(
            args.url, headers, args.conc_k, args.conc_size, chunk=args.chunk, pid=pid
        ),
    }
    results = []
    for name in args.scenarios:
        result = plans[name]()
        if not args.keep:
            scenarios.cleanup(args.url, headers, result.urls)
        results.append(result)
    return results


def _cell(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(results: Sequence[scenarios.Result], out: TextIO) -> None:
    """A markdown table of ``results``."""
    out.write("| scenario | variant | value | unit | seconds | errors | server CPU s/GiB | peak RSS MiB |\n")
    out.write("|---|---|---:|---|---:|---:|---:|---:|\n")
    for r in results:
        peak = r.usage.rss_peak_kib / 1024 if r.usage else None
        out.write(
            f"| {r.scenario} | {r.variant} | {r.value:.1f} | {r.unit} | {r.seconds:.2f} | {r.errors} "
            f"| {_cell(r.cpu_per_gib, 2)} | {_cell(peak)} |\n"
        )
    for r in results:
        if r.first_error:
            out.write(f"{r.scenario}: {r.errors} error(s), first: {r.first_error}\n")


def run(args: argparse.Namespace) -> int:
    try:
        headers = headers_from_args(args)
        results = run_scenarios(args, headers)
    except (LoadError, ValueError, OSError) as exc:
        print(f"tusd-py bench: {exc}", file=sys.stderr)
        return 1
    if args.json:
        payload: dict[str, Any] = {"url": args.url, "results": [r.to_dict() for r in results]}
        print(json.dumps(payload, indent=2))
    else:
        print_table(results, sys.stdout)
    return 0 if all(r.ok for r in results) else 1


COMMAND = Command(
    "bench", "measure creations/s, HEADs/s and upload MiB/s of a tus server", add_arguments, run
)
