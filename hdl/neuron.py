"""Pipelined neuron update and trace update (spec phases 3 and 4).

:class:`NeuronUnit` takes one neuron per clock and returns its new state
``LATENCY`` clocks later; :class:`TraceUnit` does the same for the trace of an
input axon.  Both are free of stalls: the caller feeds them from memories and
writes their results back at other addresses.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..formats import (V_BITS, I_BITS, TREF_BITS, TRACE_BITS, ALPHA_BITS, STDP_A_BITS,
                       DECAY_FRAC_BITS, STDP_FRAC_BITS, signed_range)

__all__ = ["NeuronUnit", "TraceUnit", "neuron_in_layout", "neuron_out_layout",
           "trace_in_layout", "trace_out_layout", "StepParams"]

_LO16, _HI16 = signed_range(V_BITS)
_T_MAX = (1 << TRACE_BITS) - 1


def neuron_in_layout(acc_bits: int, tag_bits: int) -> data.StructLayout:
    return data.StructLayout({
        "tag": unsigned(tag_bits),
        "acc": signed(acc_bits),            # raw weight sum of the step
        "v": signed(V_BITS), "i": signed(I_BITS), "ref": unsigned(TREF_BITS),
        "pre": unsigned(TRACE_BITS), "post": unsigned(TRACE_BITS),
        "threshold": signed(V_BITS), "v_reset": signed(V_BITS), "v_rest": signed(V_BITS),
        "alpha_v": unsigned(ALPHA_BITS), "alpha_i": unsigned(ALPHA_BITS),
        "t_ref": unsigned(TREF_BITS),
    })


def neuron_out_layout(tag_bits: int) -> data.StructLayout:
    return data.StructLayout({
        "tag": unsigned(tag_bits),
        "v": signed(V_BITS), "i": signed(I_BITS), "ref": unsigned(TREF_BITS),
        "pre": unsigned(TRACE_BITS), "post": unsigned(TRACE_BITS),
        "spike": 1,
        "d": unsigned(TRACE_BITS),          # stdp_delta(A-, post): next step's depression
        "q": unsigned(TRACE_BITS),          # stdp_delta(A+, pre): this step's potentiation
    })


def trace_in_layout(tag_bits: int) -> data.StructLayout:
    return data.StructLayout({"tag": unsigned(tag_bits), "x": unsigned(TRACE_BITS), "spike": 1})


def trace_out_layout(tag_bits: int) -> data.StructLayout:
    return data.StructLayout({"tag": unsigned(tag_bits), "x": unsigned(TRACE_BITS),
                              "q": unsigned(TRACE_BITS)})


#: Core-wide values that the units read (constant during a step).
StepParams = data.StructLayout({
    "w_shift": unsigned(4),
    "a_plus": unsigned(STDP_A_BITS), "a_minus": unsigned(STDP_A_BITS),
    "alpha_pre": unsigned(ALPHA_BITS), "alpha_post": unsigned(ALPHA_BITS),
    "jump_pre": unsigned(TRACE_BITS), "jump_post": unsigned(TRACE_BITS),
})


def _input_stage(m, inp, register):
    """The unit's input payload and valid, registered once if ``register``."""
    if not register:
        return inp.payload, inp.valid
    payload = Signal.like(inp.payload, name="in_reg")
    valid = Signal(name="in_valid")
    m.d.sync += [payload.eq(inp.payload), valid.eq(inp.valid)]
    return payload, valid


def _sat16(m, value, name):
    """Combinational ``sat16`` of a wider signed value."""
    out = Signal(signed(V_BITS), name=name)
    with m.If(value < _LO16):
        m.d.comb += out.eq(_LO16)
    with m.Elif(value > _HI16):
        m.d.comb += out.eq(_HI16)
    with m.Else():
        m.d.comb += out.eq(value)
    return out


def _decay_product(x, alpha):
    """First half of ``formats.decay``: ``x * (alpha mod 2**15)``.

    Splitting off alpha's top bit keeps the product 16x16 signed (one DSP):
    ``(x*(2**15 + a) + b) >> 15 == x + ((x*a + b) >> 15)`` exactly.
    """
    return x * alpha[:DECAY_FRAC_BITS]


def _decay_finish(x, alpha_hi, alpha_nonzero, product):
    """Second half of ``formats.decay`` given ``product = x * (alpha mod 2**15)``,
    ``alpha_hi = alpha >= 2**15`` and ``alpha_nonzero = alpha != 0``."""
    negative = (x < 0) & alpha_nonzero
    bias = Mux(negative, (1 << DECAY_FRAC_BITS) - 1, 0)
    return Mux(alpha_hi, x, 0) + ((product + bias) >> DECAY_FRAC_BITS)


def _stdp_delta(amplitude, trace):
    return (amplitude * trace + (1 << (STDP_FRAC_BITS - 1))) >> STDP_FRAC_BITS


class NeuronUnit(wiring.Component):
    """One neuron per clock: current, membrane, spike, refractory, traces.

    Implements ``docs/spec.md`` phase 3 and the neuron part of phase 4 in five
    register stages, and precomputes ``d = stdp_delta(A-, post')`` and ``q = stdp_delta(A+, pre')``.

    Parameters
    ----------
    acc_bits : int
        Width of the signed raw weight sum ``acc`` (shifted by ``w_shift`` here).
    tag_bits : int
        Width of a tag carried through unchanged (the neuron index).
    input_register : bool
        Register the inputs first (one more clock, ``latency = LATENCY + 1``):
        then block RAM outputs feeding the unit drive only registers, which a
        fast clock needs (ECP5: a block RAM output arrives about 6 ns after the
        clock edge).

    Members
    -------
    inp : In(stream, always ready)
    out : Out(stream)
        Valid ``LATENCY`` clocks after the input.
    params : In(StepParams)
    """

    LATENCY = 5

    def __init__(self, acc_bits: int, tag_bits: int, input_register: bool = False):
        self.acc_bits = acc_bits
        self.tag_bits = tag_bits
        self.input_register = bool(input_register)
        #: clocks from input to output
        self.latency = self.LATENCY + self.input_register
        super().__init__({
            "inp": In(stream.Signature(neuron_in_layout(acc_bits, tag_bits), always_ready=True)),
            "out": Out(stream.Signature(neuron_out_layout(tag_bits), always_ready=True)),
            "params": In(StepParams),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        a, a_valid = _input_stage(m, self.inp, self.input_register)

        # stage 1: leak argument, current product, trace products
        # (only what later stages need is registered: pass-through bits cost cells)
        s1 = Signal(data.StructLayout({
            "valid": 1, "tag": unsigned(self.tag_bits), "acc": signed(self.acc_bits),
            "v": signed(V_BITS), "i": signed(I_BITS), "ref": unsigned(TREF_BITS),
            "threshold": signed(V_BITS), "v_reset": signed(V_BITS), "v_rest": signed(V_BITS),
            "alpha_v": unsigned(ALPHA_BITS), "ai_hi": 1, "ai_nz": 1,
            "t_ref": unsigned(TREF_BITS), "u": signed(V_BITS), "pi": signed(32),
            "xd": unsigned(TRACE_BITS + 1), "yd": unsigned(TRACE_BITS + 1),
        }))
        u = _sat16(m, a.v - a.v_rest, "u")
        m.d.sync += [
            s1.valid.eq(a_valid), s1.tag.eq(a.tag), s1.acc.eq(a.acc),
            s1.v.eq(a.v), s1.i.eq(a.i), s1.ref.eq(a.ref), s1.threshold.eq(a.threshold),
            s1.v_reset.eq(a.v_reset), s1.v_rest.eq(a.v_rest), s1.alpha_v.eq(a.alpha_v),
            s1.ai_hi.eq(a.alpha_i[DECAY_FRAC_BITS]), s1.ai_nz.eq(a.alpha_i != 0),
            s1.t_ref.eq(a.t_ref), s1.u.eq(u),
            s1.pi.eq(_decay_product(a.i, a.alpha_i)),
            s1.xd.eq((a.pre * p.alpha_pre) >> DECAY_FRAC_BITS),
            s1.yd.eq((a.post * p.alpha_post) >> DECAY_FRAC_BITS),
        ]

        # stage 2: decayed current, membrane product
        s2 = Signal(data.StructLayout({
            "valid": 1, "tag": unsigned(self.tag_bits), "acc": signed(self.acc_bits),
            "v": signed(V_BITS), "ref": unsigned(TREF_BITS),
            "threshold": signed(V_BITS), "v_reset": signed(V_BITS), "v_rest": signed(V_BITS),
            "av_hi": 1, "av_nz": 1, "t_ref": unsigned(TREF_BITS),
            "u": signed(V_BITS), "pv": signed(32), "di": signed(I_BITS + 2),
            "xd": unsigned(TRACE_BITS + 1), "yd": unsigned(TRACE_BITS + 1),
        }))
        m.d.sync += [
            s2.valid.eq(s1.valid), s2.tag.eq(s1.tag), s2.acc.eq(s1.acc), s2.v.eq(s1.v),
            s2.ref.eq(s1.ref), s2.threshold.eq(s1.threshold), s2.v_reset.eq(s1.v_reset),
            s2.v_rest.eq(s1.v_rest), s2.av_hi.eq(s1.alpha_v[DECAY_FRAC_BITS]),
            s2.av_nz.eq(s1.alpha_v != 0), s2.t_ref.eq(s1.t_ref),
            s2.u.eq(s1.u), s2.pv.eq(_decay_product(s1.u, s1.alpha_v)),
            s2.di.eq(_decay_finish(s1.i, s1.ai_hi, s1.ai_nz, s1.pi)),
            s2.xd.eq(s1.xd), s2.yd.eq(s1.yd),
        ]

        # stage 2b: new current, decayed membrane (short paths for the clock)
        s2b = Signal(data.StructLayout({
            "valid": 1, "tag": unsigned(self.tag_bits),
            "v": signed(V_BITS), "ref": unsigned(TREF_BITS),
            "threshold": signed(V_BITS), "v_reset": signed(V_BITS), "v_rest": signed(V_BITS),
            "t_ref": unsigned(TREF_BITS), "dv": signed(V_BITS + 2), "i_new": signed(I_BITS),
            "xd": unsigned(TRACE_BITS + 1), "yd": unsigned(TRACE_BITS + 1),
        }))
        i_new = _sat16(m, s2.di + (s2.acc << p.w_shift), "i_new")
        m.d.sync += [
            s2b.valid.eq(s2.valid), s2b.tag.eq(s2.tag), s2b.v.eq(s2.v), s2b.ref.eq(s2.ref),
            s2b.threshold.eq(s2.threshold), s2b.v_reset.eq(s2.v_reset),
            s2b.v_rest.eq(s2.v_rest), s2b.t_ref.eq(s2.t_ref),
            s2b.dv.eq(_decay_finish(s2.u, s2.av_hi, s2.av_nz, s2.pv)), s2b.i_new.eq(i_new),
            s2b.xd.eq(s2.xd), s2b.yd.eq(s2.yd),
        ]
        s2 = s2b

        # stage 3: membrane, spike, reset, refractory counter, trace jumps
        s3 = Signal(data.StructLayout({
            "valid": 1, "tag": unsigned(self.tag_bits), "v": signed(V_BITS),
            "i": signed(I_BITS), "ref": unsigned(TREF_BITS), "spike": 1,
            "pre": unsigned(TRACE_BITS), "post": unsigned(TRACE_BITS),
        }))
        v_int = _sat16(m, s2.v_rest + s2.dv + s2.i_new, "v_int")
        refractory = s2.ref != 0
        v_new = Mux(refractory, s2.v, v_int)
        spike = ~refractory & (v_new >= s2.threshold)
        x_sum = s2.xd + Mux(spike, p.jump_pre, 0)
        y_sum = s2.yd + Mux(spike, p.jump_post, 0)
        m.d.sync += [
            s3.valid.eq(s2.valid), s3.tag.eq(s2.tag), s3.i.eq(s2.i_new), s3.spike.eq(spike),
            s3.v.eq(Mux(spike, s2.v_reset, v_new)),
            s3.ref.eq(Mux(refractory, s2.ref - 1, Mux(spike, s2.t_ref, 0))),
            s3.pre.eq(Mux(x_sum > _T_MAX, _T_MAX, x_sum)),
            s3.post.eq(Mux(y_sum > _T_MAX, _T_MAX, y_sum)),
        ]

        # stage 4: STDP amounts for the traces just computed
        o = self.out.payload
        m.d.sync += [
            self.out.valid.eq(s3.valid), o.tag.eq(s3.tag), o.v.eq(s3.v), o.i.eq(s3.i),
            o.ref.eq(s3.ref), o.spike.eq(s3.spike), o.pre.eq(s3.pre), o.post.eq(s3.post),
            o.d.eq(_stdp_delta(p.a_minus, s3.post)), o.q.eq(_stdp_delta(p.a_plus, s3.pre)),
        ]
        return m


class TraceUnit(wiring.Component):
    """One input-axon trace per clock: ``x' = min(255, decay_trace(x) + jump*s)``
    and ``q = stdp_delta(A+, x')``; ``LATENCY`` clocks."""

    LATENCY = 3

    def __init__(self, tag_bits: int, input_register: bool = False):
        self.tag_bits = tag_bits
        self.input_register = bool(input_register)
        #: clocks from input to output (see :class:`NeuronUnit`)
        self.latency = self.LATENCY + self.input_register
        super().__init__({
            "inp": In(stream.Signature(trace_in_layout(tag_bits), always_ready=True)),
            "out": Out(stream.Signature(trace_out_layout(tag_bits), always_ready=True)),
            "params": In(StepParams),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        a, a_valid = _input_stage(m, self.inp, self.input_register)
        v1, t1, s1 = Signal(), Signal(self.tag_bits), Signal()
        px = Signal(TRACE_BITS + ALPHA_BITS)
        m.d.sync += [v1.eq(a_valid), t1.eq(a.tag), s1.eq(a.spike), px.eq(a.x * p.alpha_pre)]
        v2, t2 = Signal(), Signal(self.tag_bits)
        x2 = Signal(TRACE_BITS)
        x_sum = (px >> DECAY_FRAC_BITS) + Mux(s1, p.jump_pre, 0)
        m.d.sync += [v2.eq(v1), t2.eq(t1), x2.eq(Mux(x_sum > _T_MAX, _T_MAX, x_sum))]
        o = self.out.payload
        m.d.sync += [self.out.valid.eq(v2), o.tag.eq(t2), o.x.eq(x2),
                     o.q.eq(_stdp_delta(p.a_plus, x2))]
        return m
