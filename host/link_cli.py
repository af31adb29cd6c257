"""``neurocorex serve``: a virtual board speaking the link protocol."""

from __future__ import annotations

import sys

from .cli import COMMANDS
from .errors import NeuroCoreXError

__all__ = []


def _serve_args(p):
    p.add_argument("--backend", choices=("model", "rtl"), default="model",
                   help="golden model (Python engine) or the simulated RTL (default: %(default)s)")
    p.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    p.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal instead of TCP")
    p.add_argument("--neurons", "-N", type=int, default=256)
    p.add_argument("--inputs", "-M", type=int, default=256)
    p.add_argument("--weight-bits", type=int, default=7)
    p.add_argument("--once", action="store_true", help="exit when the first client disconnects")


def _serve(args):
    from .formats import CoreConfig
    from .sim.vboard import VirtualBoard, serve_tcp, serve_pty
    config = CoreConfig(args.neurons, args.inputs, args.weight_bits)
    board = VirtualBoard(args.backend, config)

    def say(text):
        print(text)
        sys.stdout.flush()

    try:
        if args.pty:
            serve_pty(board, ready=lambda path: say(f"serving {args.backend} on {path}"))
        else:
            try:
                serve_tcp(board, args.port, once=args.once,
                          ready=lambda port: say(f"listening on 127.0.0.1:{port}"))
            except OSError as e:
                raise NeuroCoreXError(f"cannot listen on port {args.port}: {e.strerror}") from None
    finally:
        board.close()
    return 0


COMMANDS["serve"] = ("serve a virtual board (TCP or pseudo-terminal)", _serve_args, _serve)
