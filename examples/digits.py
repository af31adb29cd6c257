"""Digits demo: sklearn's 8x8 digits on a NeuroCoreX device.

64 rate-coded inputs (pixel value p fires p times in 16 steps) drive 10
non-leaky integrate-and-fire neurons whose input weights are a logistic
regression trained off-chip with numpy and quantised to the core's 7-bit
weights.  The neuron with the most spikes (earliest first spike on a tie) is
the answer.  The whole test set runs on the golden model; with
``--device rtl`` (or a board's serial port) the first ``--subset`` test
digits also run there and the predictions are compared one by one.

    python examples/digits.py                       # model only
    python examples/digits.py --device rtl --subset 20

Same as ``neurocorex demo digits``.
"""

import argparse
import sys

from neurocorex.demos import run_digits


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", "-d", default="model")
    p.add_argument("--subset", type=int, default=None,
                   help="test digits to run on --device and compare (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", "-o", default="out", help="folder for the PNGs")
    args = p.parse_args(argv)
    r = run_digits(args.device, seed=args.seed, subset=args.subset, out=args.out)
    return 0 if r.get("agree", 0) == r.get("compared", 0) else 1


if __name__ == "__main__":
    sys.exit(main())
