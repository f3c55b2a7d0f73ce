"""tusd-py: a resumable upload server speaking tus 1.0.0."""

__version__ = "0.1.0"
