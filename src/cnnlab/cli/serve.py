"""`cnnlab serve RUN [RUN ...]`: a local web page and JSON API to try trained models (extra `cnnlab[serve]`)."""

from __future__ import annotations

import argparse
import sys

from cnnlab.cli._common import add_threads_flag

_MISSING = "cnnlab serve needs FastAPI and uvicorn: pip install 'cnnlab[serve]'"


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import fastapi_offline  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn
    except ImportError as e:
        print(f"{_MISSING} ({e})", file=sys.stderr)
        return 2
    from cnnlab.cli._common import use_threads
    from cnnlab.serve.app import create_app

    use_threads(args)  # each request's forward pass runs on this many intra-op threads

    app = create_app(args.runs, data_dir=args.data_dir, max_bytes=args.max_bytes)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"cnnlab serve: {', '.join(app.state.served)} at http://{shown}:{args.port}/  (API docs: /docs)", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: listening on {args.host}: anyone who can reach this machine can use the models (no login, "
            "no TLS)",
            file=sys.stderr,
        )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="a local web page to try models: draw or drop an image, see saliency",
        description="Serve models on a local web page and a JSON API under /api/ (docs at /docs). "
        "RUN is a run folder or a .safetensors model file (not an .onnx export).",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folder or .safetensors model file")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 exposes the server to the network)",
    )
    p.add_argument("--data-dir", help="where the models' data sets are, for random test images")
    p.add_argument("--max-bytes", type=int, default=10 * 1024 * 1024, help="upload limit in bytes (default: 10 MB)")
    add_threads_flag(p)
    p.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(func=cmd_serve)
