"""STDP update of one stored synapse word (spec phases 2 and 5).

A synapse word is ``weight_bits + 1`` bits: the signed weight in the low bits
and the plasticity enable above (``regmap.synapse_word``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..formats import CoreConfig, TRACE_BITS

__all__ = ["SynapseUpdate", "synapse_update"]


def synapse_update(m: Module, config: CoreConfig, word, amount, enable, potentiate, w_min, w_max,
                   name="syn", bound=None):
    """Return ``(new_word, changed)`` signals for one synapse word.

    Depression: ``W <- W`` if ``W <= w_min`` else ``max(W - amount, w_min)``;
    potentiation: ``W <- W`` if ``W >= w_max`` else ``min(W + amount, w_max)``;
    only when ``enable`` and the synapse's plastic bit are set.

    Both directions share one adder and two comparators: depression is
    potentiation of the one's complement, ``~W = -W - 1`` (``W - a`` becomes
    ``~W + a``, ``W <= w_min`` becomes ``~W >= ~w_min``).  The bound
    ``potentiate ? w_max : ~w_min`` does not depend on the word, so Yosys
    shares it between the lanes of a datapath; a caller may pass it in
    ``bound`` instead (e.g. from a register), and ``w_min`` and ``w_max`` are
    then not used.
    """
    wb = config.weight_bits
    flip = Signal(signed(wb), name=f"{name}_flip")       # all ones when depressing
    m.d.comb += flip.eq(Mux(potentiate, 0, -1))
    x = Signal(signed(wb), name=f"{name}_x")
    m.d.comb += x.eq(word[:wb] ^ flip)
    if bound is None:
        bound = Signal(signed(wb), name=f"{name}_bound")
        m.d.comb += bound.eq(Mux(potentiate, w_max, ~w_min))
    y = Signal(signed(max(wb, TRACE_BITS + 1) + 1), name=f"{name}_y")
    m.d.comb += y.eq(x + amount)
    at_bound = Signal(name=f"{name}_at_bound")
    m.d.comb += at_bound.eq(x >= bound)
    new_x = Signal(signed(wb), name=f"{name}_new_x")
    with m.If(at_bound | ~enable | ~word[wb]):
        m.d.comb += new_x.eq(x)
    with m.Elif(y > bound):
        m.d.comb += new_x.eq(bound)
    with m.Else():
        m.d.comb += new_x.eq(y)
    new_word = Signal(unsigned(wb + 1), name=f"{name}_new")
    m.d.comb += new_word.eq(Cat((new_x ^ flip).as_unsigned(), word[wb]))
    # below the bound any nonzero amount moves the weight
    changed = Signal(name=f"{name}_changed")
    m.d.comb += changed.eq(enable & word[wb] & ~at_bound & (amount != 0))
    return new_word, changed


class SynapseUpdate(wiring.Component):
    """Combinational STDP update of one synapse word (for tests and reuse)."""

    def __init__(self, config: CoreConfig):
        self.config = config
        wb = config.weight_bits
        super().__init__({
            "word": In(wb + 1), "amount": In(TRACE_BITS), "enable": In(1), "potentiate": In(1),
            "w_min": In(signed(wb)), "w_max": In(signed(wb)),
            "new_word": Out(wb + 1), "changed": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        new, changed = synapse_update(m, self.config, self.word, self.amount, self.enable,
                                      self.potentiate, self.w_min, self.w_max)
        m.d.comb += [self.new_word.eq(new), self.changed.eq(changed)]
        return m
