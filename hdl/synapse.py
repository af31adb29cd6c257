"""STDP update of one stored synapse word (spec phases 2 and 5).

A synapse word is ``weight_bits + 1`` bits: the signed weight in the low bits
and the plasticity enable above (``regmap.synapse_word``).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..formats import CoreConfig, TRACE_BITS

__all__ = ["SynapseUpdate", "synapse_update"]


def synapse_update(m: Module, config: CoreConfig, word, amount, enable, potentiate, w_min, w_max,
                   name="syn"):
    """Return ``(new_word, changed)`` signals for one synapse word.

    Depression: ``W <- W`` if ``W <= w_min`` else ``max(W - amount, w_min)``;
    potentiation: ``W <- W`` if ``W >= w_max`` else ``min(W + amount, w_max)``;
    only when ``enable`` and the synapse's plastic bit are set.
    """
    wb = config.weight_bits
    w = word[:wb].as_signed()
    plastic = word[wb]
    wide = signed(max(wb, TRACE_BITS + 1) + 2)
    dec = Signal(wide, name=f"{name}_dec")
    inc = Signal(wide, name=f"{name}_inc")
    m.d.comb += [dec.eq(w - amount), inc.eq(w + amount)]
    new_w = Signal(signed(wb), name=f"{name}_w")
    with m.If(~enable | ~plastic):
        m.d.comb += new_w.eq(w)
    with m.Elif(potentiate):
        with m.If(w >= w_max):
            m.d.comb += new_w.eq(w)
        with m.Else():
            m.d.comb += new_w.eq(Mux(inc > w_max, w_max, inc))
    with m.Else():
        with m.If(w <= w_min):
            m.d.comb += new_w.eq(w)
        with m.Else():
            m.d.comb += new_w.eq(Mux(dec < w_min, w_min, dec))
    new_word = Signal(unsigned(wb + 1), name=f"{name}_new")
    m.d.comb += new_word.eq((plastic << wb) | new_w.as_unsigned())
    changed = Signal(name=f"{name}_changed")
    m.d.comb += changed.eq(new_w != w)
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
