"""Memory organisation of the core, shared by the gateware, its simulator
driver and the benchmarks.

The synapses of every source row (``N`` recurrent rows, then ``M`` input rows)
live in ``B`` single-port banks whose words hold ``L`` synapses of one row.
Post neurons are grouped by ``L`` (group ``g = j // L``) and a group is stored
in bank ``(r + g) % B`` at address ``r * cols + g // B`` (a skewed layout):

* a **row** access (integration and depression of source ``r``) reads the
  same address in every bank and gets ``B*L`` consecutive posts;
* a **column** access (potentiation of post ``j``) reads ``B`` consecutive
  source rows at once, each bank at its own address.
"""

from __future__ import annotations

from ..formats import CoreConfig

__all__ = ["Geometry"]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class Geometry:
    """Sizes and address arithmetic of the core's memories.

    Parameters
    ----------
    config : CoreConfig
        Shape of the core.
    banks : int
        Number of synapse banks ``B`` (a power of two).
    lanes : int or None
        Synapses per bank word ``L`` (a power of two); by default as many as
        fit 16 bits (the width of an iCE40 SPRAM).
    """

    def __init__(self, config: CoreConfig, banks: int = 4, lanes: int | None = None):
        sb = config.synapse_bits
        if lanes is None:
            lanes = 1
            while 2 * lanes * sb <= 16:
                lanes *= 2
        for name, v in (("banks", banks), ("lanes", lanes)):
            if v < 1 or v & (v - 1):
                raise ValueError(f"{name} must be a power of two, got {v}")
        self.config = config
        n, m = config.neurons, config.inputs
        self.banks = banks                      # B
        self.lanes = lanes                      # L
        self.width = lanes * sb                 # bits of a bank word
        self.posts = banks * lanes              # P: posts per row access
        self.groups = _ceil_div(n, lanes)
        self.cols = _ceil_div(self.groups, banks)   # words per row per bank
        self.n_pad = _ceil_div(n, banks) * banks    # first input row
        self.m_pad = _ceil_div(m, banks) * banks
        self.rows = self.n_pad + self.m_pad
        self.row_groups = self.rows // banks        # column accesses per post
        self.depth = self.rows * self.cols          # words per bank
        #: signed width of the raw per-step weight sum of one neuron (exact:
        #: every source adds one weight in [-2**(wb-1), 2**(wb-1) - 1])
        half = 1 << (config.weight_bits - 1)
        lo, hi = -half * (n + m), (half - 1) * (n + m)
        bits = 1
        while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
            bits += 1
        self.acc_bits = bits

    def rec_row(self, i: int) -> int:
        return i

    def in_row(self, k: int) -> int:
        return self.n_pad + k

    def locate(self, r: int, j: int) -> tuple[int, int, int]:
        """``(bank, address, lane)`` of the synapse from source row ``r`` to post ``j``."""
        g = j // self.lanes
        return (r + g) % self.banks, r * self.cols + g // self.banks, j % self.lanes

    def __repr__(self):
        return (f"Geometry(B={self.banks}, L={self.lanes}, cols={self.cols}, rows={self.rows}, "
                f"depth={self.depth}, width={self.width})")
