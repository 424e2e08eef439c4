"""`cnnlab serve`: a local web page and a JSON API to try trained models (needs the extra `cnnlab[serve]`).

`cnnlab.serve.app.create_app(paths)` builds the FastAPI application; `cnnlab.serve.images` turns uploaded bytes into
the model's input without touching the disk. This package imports nothing at import time, so the CLI can name it
without FastAPI installed.
"""
