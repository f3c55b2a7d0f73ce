"""Load generation for ``tusd-py bench`` and ``tests/bench/``.

``loadclient`` is a blocking keep-alive tus client that streams bodies from
a deterministic byte pattern; ``procstat`` samples a server process's CPU
and memory from ``/proc``; ``scenarios`` times creations, HEADs, single
uploads and concurrent uploads. Standard library only, so the same code
drives any tus server.
"""
