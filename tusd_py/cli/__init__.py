"""The ``tusd-py`` commands: serve (and the server assembly), worker, token, bench, the uploader client."""
