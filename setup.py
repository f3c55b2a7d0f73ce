"""Packaging for tusd-py (console script ``tusd-py``)."""

from setuptools import find_packages, setup

setup(
    name="tusd-py",
    version="0.1.0",
    description="Resumable upload server (tus 1.0.0) on Tornado: local disk, S3 relay, SQLite or Redis",
    python_requires=">=3.11",
    packages=find_packages(
        include=["tusd_py", "tusd_py.*", "handlers", "handlers.*", "storage", "storage.*"]
    ),
    package_data={"tusd_py": ["py.typed", "web/static/*"], "handlers": ["py.typed"], "storage": ["py.typed"]},
    install_requires=[
        "tornado>=6.4",
        "redis>=5.0",
        "hiredis>=3.0",
        "boto3>=1.34",
        "pyjwt[crypto]>=2.8",
        "python-magic>=0.4.27",
        "sqlite-utils>=3.36",
        "prometheus-client>=0.20",
        "limits>=4.2",
        "python-multipart>=0.0.18",
        "http-sf>=1.0",  # RFC 9651 structured fields (Upload-Limit, Repr-Digest, Upload-Complete)
        "huey>=2.5",  # the job queue (SQLite storage on one host, Redis with [redis] url)
        "tqdm>=4.66",  # progress bars of `tusd-py upload`/`download` (bytes, rate, ETA)
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-tornado>=0.8.1",
            "hypothesis>=6.100",
            "moto[server]>=5.0",
            "tuspy>=1.0",
            "mypy>=1.10",
            "ruff>=0.5",
            "boto3-stubs[s3]",
            "types-requests",
            "openapi-spec-validator>=0.7",
            "schemathesis>=4.0",  # property-based checks of the live API against /openapi.json
            "playwright>=1.45",  # browser tests, driving Debian's chromium (no browser download)
            "types-tqdm",
            "import-linter>=2.1",  # layering contracts of .importlinter (README command 2 runs lint-imports)
            "uvloop>=0.19",  # the tests run both event loops ([server] event_loop)
        ],
        "fast": ["uvloop>=0.19"],  # libuv event loop, picked by [server] event_loop = "auto"
    },
    entry_points={"console_scripts": ["tusd-py=tusd_py.cli.main:main"]},
)
