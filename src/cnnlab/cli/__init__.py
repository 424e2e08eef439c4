"""`cnnlab <verb>`: each verb parses its flags, calls one library function and prints the result.

One module per verb group registers its parsers (`add_parsers(sub)`) and holds its commands; the commands import
the library when they run, so `cnnlab --help` imports neither torch nor the rest of cnnlab.
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import threading
import warnings

from cnnlab.cli import deploy, evaluate, explain, features, lab, models, serve, train
from cnnlab.cli._common import VerbParser

VERB_GROUPS = (
    train,
    evaluate,
    models,
    explain,
    features,
    deploy,
    lab,
    serve,
)  # in the order `cnnlab --help` lists them


def build_parser() -> argparse.ArgumentParser:
    from cnnlab import __version__

    parser = argparse.ArgumentParser(prog="cnnlab", description="CNNs for image classification, end to end.")
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True, parser_class=VerbParser)
    for group in VERB_GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as given: `train --nproc` passes it on to torchrun
    warnings.simplefilter("default")
    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, OSError) as e:
        print(f"cnnlab {args.verb}: error: {e}", file=sys.stderr)
        return 2


def entry() -> None:
    """The `cnnlab` program (`python -m cnnlab` too): `main`, then an exit without Python's module teardown.

    Tearing down torch's thousands of modules and objects takes 0.4–0.8 s after the work is done (measured on a
    2-core Zen 3: 0.8 s once an optimizer has imported torch._dynamo), time a `--time-budget` run would have to keep
    for nothing. Everything cnnlab writes is closed and renamed into place before `main` returns; the exit handlers
    (logging, multiprocessing's children) run as usual and the standard streams are flushed. Threads of the
    command still running (none of cnnlab's) are waited for by the ordinary exit instead.
    """
    code = main()
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away (`cnnlab … | head`), a stream closed
            pass
    os._exit(code if isinstance(code, int) else 0)
