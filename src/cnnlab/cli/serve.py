"""`cnnlab serve RUN [RUN ...]`: a local web page and JSON API to try trained models (extra `cnnlab[serve]`)."""

from __future__ import annotations

import argparse
import socket
import sys

from cnnlab.cli._common import add_threads_flag, count

_MISSING = "cnnlab serve needs FastAPI and uvicorn: pip install 'cnnlab[serve]'"


def port(text: str) -> int:
    """argparse `type=` for --port: 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number 0–65535, got '{text}'") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0–65535 (0: any free port), got {value}")
    return value


port.__name__ = "port"


def listen(host: str, number: int) -> socket.socket:
    """A socket bound to host:number and listening, so that a port in use is one error before anything is printed;
    the bound port is the real one (--port 0 picks a free one)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, number, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise OSError(e.errno, f"--host {host}: cannot listen there ({e.strerror or e})") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        raise OSError(e.errno, f"cannot listen on {host}:{number} ({e.strerror}); choose another --port") from None
    sock.set_inheritable(True)
    return sock


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

    app = create_app(
        args.runs,
        data_dir=args.data_dir,
        max_bytes=args.max_bytes,
        data=args.data,
        allowed_hosts=args.allow_host,
        max_memory=args.max_memory * 2**20,
    )
    sock = listen(args.host, args.port)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    where = f"http://{shown}:{sock.getsockname()[1]}/"
    print(f"cnnlab serve: {', '.join(app.state.served)} at {where}  (API docs: /docs)", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: listening on {args.host}: anyone who can reach this machine can use the models (no login, "
            "no TLS)",
            file=sys.stderr,
        )
    uvicorn.Server(uvicorn.Config(app, log_level=args.log_level)).run(sockets=[sock])
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="a local web page to try models: draw or drop an image, see saliency",
        description="Serve models on a local web page and a JSON API under /api/ (docs at /docs). "
        "RUN is a run folder, a .safetensors model file or an .onnx file (predictions only).",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folder, .safetensors model file or .onnx file")
    p.add_argument("--port", type=port, default=8000, help="port to listen on (default: 8000; 0: any free port)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 exposes the server to the network)",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name the server answers to besides its address and localhost (repeatable), e.g. when it "
        "is reached as myhost.local",
    )
    p.add_argument("--data-dir", help="where named data sets (fashion-mnist, …) are, for random test images")
    p.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="SOURCE",
        help="a folder:/npz:/csv: data set the served models were trained on, for random test images (repeatable); "
        "a path recorded in a model file is never read unless named here",
    )
    p.add_argument("--max-bytes", type=count, default=10 * 1024 * 1024, help="upload limit in bytes (default: 10 MB)")
    p.add_argument(
        "--max-memory",
        type=count,
        default=1024,
        metavar="MB",
        help="memory all requests in progress may use together, in MiB (default: 1024); a request waits for room",
    )
    add_threads_flag(p)
    p.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(func=cmd_serve)
