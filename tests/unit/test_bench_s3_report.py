"""The ``s3`` scenario's rows in the report of ``tests/bench/run_bench.py``:
ratios to boto3 ``upload_file``, the issue-18 verdict, the zero-copy
before/after (records built here; no server runs)."""

from __future__ import annotations

from tests.bench import bench_report
from tests.bench.s3_relay import result_of

SIZE = 64 << 20


def records(values: dict[str, list[float]]) -> list[bench_report.Record]:
    """Records of the ``s3`` scenario: MiB/s per server, one per round."""
    out = []
    for server, speeds in values.items():
        for rnd, speed in enumerate(speeds, start=1):
            out.append(bench_report.Record(rnd, server, "s3", result_of(SIZE / (1 << 20) / speed, SIZE)))
    return out


def info() -> bench_report.RunInfo:
    return bench_report.RunInfo(
        command="python3 tests/bench/run_bench.py --scenarios s3",
        rounds=2,
        started="now",
        load_before="0",
        single_size=1 << 30,
        small_size=100 << 20,
        chunk=8 << 20,
    )


def test_s3_relay_is_measured_against_boto3() -> None:
    assert bench_report.base_of(bench_report.S3_SERVER) == bench_report.BOTO
    assert bench_report.base_of(bench_report.S3_COPY) == bench_report.BOTO
    assert bench_report.base_of(bench_report.BOTO) is None


def test_verdict_row_uses_the_paired_ratio_to_boto3() -> None:
    text = bench_report.report(
        records({bench_report.S3_SERVER: [110, 80], bench_report.BOTO: [100, 100]}), info()
    )
    # paired ratios 1.10 and 0.80: median 0.95, below the target
    assert "| S3 relay ≥ 1.0× boto3 upload_file | tusd-py-s3 | 0.950 | **no** |" in text
    assert "| S3 relay: paired ratio to boto3 upload_file ≥ 0.8 | tusd-py-s3 | 0.95 | yes |" in text
    row = next(line for line in text.splitlines() if line.startswith("| 64M to moto | tusd-py-s3 |"))
    assert "| 80..110 | 0.95 | 0.95 |" in row  # spread, ratio of medians, paired


def test_zero_copy_off_variant_gives_a_before_after_row() -> None:
    values = {
        bench_report.S3_SERVER: [120, 100],
        bench_report.S3_COPY: [100, 100],
        bench_report.BOTO: [100, 100],
    }
    text = bench_report.report(records(values), info())
    assert "| s3 64M to moto | tusd-py-s3 | 100.0 | 110.0 | 1.10 |" in text
    assert "| S3 relay ≥ 1.0× boto3 upload_file | tusd-py-s3 | 1.100 | yes |" in text
