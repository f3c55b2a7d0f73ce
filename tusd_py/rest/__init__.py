"""The REST API for non-tus clients: one-shot ``/index``, status documents, listings, forms, OpenAPI."""
