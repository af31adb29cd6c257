"""The ``neurocorex`` command line.

User errors print one line on stderr and exit with status 2; no traceback.
Subcommands register themselves in :data:`COMMANDS` (name → (setup, run)).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .errors import NeuroCoreXError

__all__ = ["main", "COMMANDS", "device_args", "open_device"]

#: name → (help, add_arguments(parser), run(args) -> int); other modules add theirs.
COMMANDS: dict = {}

#: Version of the layout of the ``.npz`` that ``neurocorex run`` writes (docs/file-formats.md).
RUN_FILE_VERSION = 1


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr, exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def device_args(p, default="model"):
    p.add_argument("--device", "-d", default=default,
                   help="model, rtl, a serial port or a pyserial URL (default: %(default)s)")


def open_device(args, net=None):
    from .device import connect
    kwargs = {}
    if args.device == "model" and net is not None:
        kwargs = dict(neurons=max(net.neurons, 1), inputs=net.inputs,
                      weight_bits=net.config.weight_bits)
    return connect(args.device, **kwargs)


def _load_network(path, dt=None):
    from .network import Network
    if str(path).endswith(".nir"):
        try:
            from .nirgraph import from_nir
        except ImportError:
            raise NeuroCoreXError("NIR files need the NIR support (neurocorex.nirgraph)") from None
        return from_nir(path, dt=dt)
    return Network.load(path)


# -- info -------------------------------------------------------------------------------

def _info_args(p):
    device_args(p)


def _info(args):
    with open_device(args) as dev:
        for k, v in dev.info().items():
            print(f"{k}: {v}")
    return 0


# -- run ---------------------------------------------------------------------------------

def _run_args(p):
    p.add_argument("network", help="network file (.npz from Network.save, or .nir)")
    device_args(p)
    p.add_argument("--steps", "-n", type=int, required=True, help="time steps to run")
    p.add_argument("--inputs", "-i", help=".npz with a bool array 'inputs' of shape (steps, M)")
    p.add_argument("--out", "-o", required=True, help="output .npz (spikes, w_rec, w_in)")
    p.add_argument("--dt", type=float, default=None,
                   help="time step in a .nir graph's time unit (default: the graph's "
                        "NeuroCoreX metadata, else 1.0)")


def _run(args):
    net = _load_network(args.network, args.dt)
    inputs = None
    if args.inputs:
        from .network import read_npz
        z = read_npz(args.inputs, "inputs file")
        if "inputs" not in z:
            raise NeuroCoreXError(f"inputs file {args.inputs!r} has no array named 'inputs'")
        inputs = z["inputs"]
    with open_device(args, net) as dev:
        dev.load(net)
        rec = dev.run(args.steps, inputs)
        w_rec, w_in = dev.read_weights()
    try:
        np.savez_compressed(args.out, format_version=RUN_FILE_VERSION, spikes=rec.spikes,
                            w_rec=w_rec, w_in=w_in)
    except OSError as e:
        raise NeuroCoreXError(f"cannot write {args.out!r}: {e.strerror}") from None
    print(f"steps: {rec.steps}")
    print(f"spikes: {int(rec.spikes.sum())}")
    print(f"out: {args.out}")
    return 0


COMMANDS["info"] = ("print the device's capabilities", _info_args, _info)
COMMANDS["run"] = ("run a network file on a device", _run_args, _run)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    p = _Parser(prog="neurocorex", description="NeuroCoreX host toolchain")
    p.add_argument("--version", action="version", version=f"neurocorex {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    _load_plugins()
    for name, (help, add_args, _) in COMMANDS.items():
        sp = sub.add_parser(name, help=help)
        add_args(sp)
    return p


def _load_plugins():
    """Import modules that register further subcommands, if present."""
    import importlib
    for mod in ("neurocorex.link_cli", "neurocorex.boards.cli", "neurocorex.demos", "neurocorex.bench"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command][2](args) or 0
    except NeuroCoreXError as e:
        print(f"neurocorex {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
