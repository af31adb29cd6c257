"""Pipelined neuron update and trace update (spec phases 3 and 4).

:class:`NeuronUnit` takes one neuron per clock and returns its new state
``LATENCY`` clocks later; :class:`TraceUnit` does the same for the trace of an
input axon.  Both are free of stalls: the caller feeds them from memories and
writes their results back at other addresses.
"""

from __future__ import annotations

from amaranth.hdl import C, Cat, Module, Mux, Signal, signed, unsigned
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


#: Width to which the shifted weight sum is clamped before it meets the
#: decayed current: |decay(i)| < 2**16, so any sum beyond +-2**19 saturates
#: ``i'`` the same way as the exact one, and the adder stays short.
_ACS_BITS = 20


def _fits(value, bits):
    """``value`` (signed) lies in the signed range of ``bits`` bits: its top bits
    all equal the sign (LUTs only, no comparator carry chain)."""
    top = value[bits - 1:]
    return ~top.any() | top.all()


def _clamp(value, bits):
    """Saturate a wider signed ``value`` to ``bits`` bits."""
    lo, hi = signed_range(bits)
    return Mux(_fits(value, bits), value[:bits].as_signed(), Mux(value[-1], lo, hi))


def _sat16(value):
    return _clamp(value, V_BITS)


def _min_tmax(x):
    """``min(255, x)`` of a small unsigned ``x``."""
    return Mux(x[TRACE_BITS:].any(), _T_MAX, x[:TRACE_BITS])


def _add_cin(m, a, b, cin):
    """``a + b + cin`` (``cin`` one bit) as a single carry chain: the carry-in
    rides in an extra low bit, ``(2a+1 + 2b+cin) >> 1``."""
    w = max(len(a), len(b)) + 1
    ae, be = Signal(signed(w)), Signal(signed(w))
    m.d.comb += [ae.eq(a), be.eq(b)]
    return (Cat(C(1, 1), ae).as_signed() + Cat(cin, be).as_signed()) >> 1


def _round_up(negative, product):
    """Carry that turns ``product >> 15`` into ``formats.decay``'s rounding toward
    zero: ``(p + (2**15-1 if p < 0 else 0)) >> 15 == (p >> 15) + (p < 0 and
    p mod 2**15 != 0)``.  With ``p = x * (alpha mod 2**15)`` the remainder is
    nonzero only if the factor is, so the sign of ``x`` stands for ``p < 0``;
    the whole-number part ``x * (alpha >= 2**15)`` adds no remainder.
    """
    return negative & product[:DECAY_FRAC_BITS].any()


def _round8(product):
    """``stdp_delta`` from the product ``A * trace``: ``(product + 128) >> 8``
    with the rounding bit as a carry into an 8-bit adder."""
    return product[STDP_FRAC_BITS:] + product[STDP_FRAC_BITS - 1]


class NeuronUnit(wiring.Component):
    """One neuron per clock: current, membrane, spike, refractory, traces.

    Implements ``docs/spec.md`` phase 3 and the neuron part of phase 4 in
    ``LATENCY`` register stages, and precomputes ``d = stdp_delta(A-, post')``
    and ``q = stdp_delta(A+, pre')``.

    Every stage holds at most one carry chain (parallel chains are fine) plus a
    few LUT levels, and every multiplier has a registered output, so that the
    iCE40 UP5K reaches its 35 MHz target:

    1. ``u = sat16(v - v_rest)``, ``v_rest - threshold``, ``acc << w_shift``;
       products ``i * alpha_i``, ``pre * alpha_pre``, ``post * alpha_post``.
    2. decayed current ``di``; product ``u * alpha_v``; ``v_rest`` plus the
       whole-number part of the membrane decay; shifted sum clamped to 20 bits.
    3. ``v_rest + decay(u)`` (and the same minus ``threshold``); ``di + acc``.
    4. ``i' = sat16(...)``; membrane sum before saturation (and minus
       ``threshold``); both candidate traces (with and without a spike).
    5. spike, reset, refractory counter, traces (LUTs only).
    6. STDP amounts of the new traces.

    Parameters
    ----------
    acc_bits : int
        Width of the signed raw weight sum ``acc`` (shifted by ``w_shift`` here).
    tag_bits : int
        Width of a tag carried through unchanged (the neuron index).

    Members
    -------
    inp : In(stream, always ready)
    out : Out(stream)
        Valid ``LATENCY`` clocks after the input.
    params : In(StepParams)
        Read combinationally in several stages: hold them during a pass.
    """

    LATENCY = 6

    def __init__(self, acc_bits: int, tag_bits: int):
        self.acc_bits = acc_bits
        self.tag_bits = tag_bits
        super().__init__({
            "inp": In(stream.Signature(neuron_in_layout(acc_bits, tag_bits), always_ready=True)),
            "out": Out(stream.Signature(neuron_out_layout(tag_bits), always_ready=True)),
            "params": In(StepParams),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        a = self.inp.payload
        tb = self.tag_bits
        acs_bits = self.acc_bits + (1 << len(p.w_shift)) - 1

        # stage 1 (only what later stages need is registered: pass-through bits cost cells)
        s1 = Signal(data.StructLayout({
            "valid": 1, "tag": unsigned(tb), "v": signed(V_BITS), "ref": unsigned(TREF_BITS),
            "v_reset": signed(V_BITS), "v_rest": signed(V_BITS), "t_ref": unsigned(TREF_BITS),
            "alpha_v": unsigned(ALPHA_BITS), "th_lo": 1,
            "u": signed(V_BITS), "vrt": signed(V_BITS + 1), "acs": signed(acs_bits),
            "pi": signed(V_BITS + DECAY_FRAC_BITS), "im": signed(I_BITS), "ineg": 1,
            "xd": unsigned(TRACE_BITS + 1), "yd": unsigned(TRACE_BITS + 1),
        }))
        m.d.sync += [
            s1.valid.eq(self.inp.valid), s1.tag.eq(a.tag), s1.v.eq(a.v), s1.ref.eq(a.ref),
            s1.v_reset.eq(a.v_reset), s1.v_rest.eq(a.v_rest), s1.t_ref.eq(a.t_ref),
            s1.alpha_v.eq(a.alpha_v), s1.th_lo.eq(a.threshold == _LO16),
            s1.u.eq(_sat16(a.v - a.v_rest)), s1.vrt.eq(a.v_rest - a.threshold),
            s1.acs.eq(a.acc << p.w_shift),
            s1.pi.eq(a.i * a.alpha_i[:DECAY_FRAC_BITS]),
            s1.im.eq(Mux(a.alpha_i[DECAY_FRAC_BITS], a.i, 0)), s1.ineg.eq(a.i < 0),
            s1.xd.eq((a.pre * p.alpha_pre) >> DECAY_FRAC_BITS),
            s1.yd.eq((a.post * p.alpha_post) >> DECAY_FRAC_BITS),
        ]

        # stage 2
        s2 = Signal(data.StructLayout({
            "valid": 1, "tag": unsigned(tb), "v": signed(V_BITS), "ref": unsigned(TREF_BITS),
            "v_reset": signed(V_BITS), "t_ref": unsigned(TREF_BITS), "th_lo": 1,
            "pv": signed(V_BITS + DECAY_FRAC_BITS), "vneg": 1,
            "rv": signed(V_BITS + 2), "rvt": signed(V_BITS + 2),
            "di": signed(I_BITS + 2), "acs": signed(_ACS_BITS),
            "xd": unsigned(TRACE_BITS + 1), "yd": unsigned(TRACE_BITS + 1),
        }))
        vm = Mux(s1.alpha_v[DECAY_FRAC_BITS], s1.u, 0)
        m.d.sync += [
            s2.valid.eq(s1.valid), s2.tag.eq(s1.tag), s2.v.eq(s1.v), s2.ref.eq(s1.ref),
            s2.v_reset.eq(s1.v_reset), s2.t_ref.eq(s1.t_ref), s2.th_lo.eq(s1.th_lo),
            s2.pv.eq(s1.u * s1.alpha_v[:DECAY_FRAC_BITS]), s2.vneg.eq(s1.u < 0),
            s2.rv.eq(s1.v_rest + vm), s2.rvt.eq(s1.vrt + vm),
            s2.di.eq(_add_cin(m, s1.im, s1.pi >> DECAY_FRAC_BITS, _round_up(s1.ineg, s1.pi))),
            s2.acs.eq(_clamp(s1.acs, _ACS_BITS)),
            s2.xd.eq(s1.xd), s2.yd.eq(s1.yd),
        ]

        # stage 3
        s3 = Signal(data.StructLayout({
            "valid": 1, "tag": unsigned(tb), "v": signed(V_BITS), "ref": unsigned(TREF_BITS),
            "v_reset": signed(V_BITS), "t_ref": unsigned(TREF_BITS), "th_lo": 1,
            "vd": signed(V_BITS + 3), "vdt": signed(V_BITS + 3), "isum": signed(_ACS_BITS + 1),
            "xd": unsigned(TRACE_BITS + 1), "yd": unsigned(TRACE_BITS + 1),
        }))
        cin_v = _round_up(s2.vneg, s2.pv)
        m.d.sync += [
            s3.valid.eq(s2.valid), s3.tag.eq(s2.tag), s3.v.eq(s2.v), s3.ref.eq(s2.ref),
            s3.v_reset.eq(s2.v_reset), s3.t_ref.eq(s2.t_ref), s3.th_lo.eq(s2.th_lo),
            s3.vd.eq(_add_cin(m, s2.rv, s2.pv >> DECAY_FRAC_BITS, cin_v)),
            s3.vdt.eq(_add_cin(m, s2.rvt, s2.pv >> DECAY_FRAC_BITS, cin_v)),
            s3.isum.eq(s2.di + s2.acs),
            s3.xd.eq(s2.xd), s3.yd.eq(s2.yd),
        ]

        # stage 4
        s4 = Signal(data.StructLayout({
            "valid": 1, "tag": unsigned(tb), "v": signed(V_BITS), "refr": 1,
            "ref_m1": unsigned(TREF_BITS), "v_reset": signed(V_BITS),
            "t_ref": unsigned(TREF_BITS), "th_lo": 1, "i": signed(I_BITS),
            "vsum": signed(V_BITS + 4), "vsumt": signed(V_BITS + 4),
            "x0": unsigned(TRACE_BITS), "x1": unsigned(TRACE_BITS),
            "y0": unsigned(TRACE_BITS), "y1": unsigned(TRACE_BITS),
        }))
        i_new = Signal(signed(I_BITS))
        m.d.comb += i_new.eq(_sat16(s3.isum))
        m.d.sync += [
            s4.valid.eq(s3.valid), s4.tag.eq(s3.tag), s4.v.eq(s3.v), s4.refr.eq(s3.ref != 0),
            s4.ref_m1.eq(s3.ref - 1), s4.v_reset.eq(s3.v_reset), s4.t_ref.eq(s3.t_ref),
            s4.th_lo.eq(s3.th_lo), s4.i.eq(i_new),
            s4.vsum.eq(s3.vd + i_new), s4.vsumt.eq(s3.vdt + i_new),
            # the traces with and without a spike, chosen in stage 5
            s4.x0.eq(_min_tmax(s3.xd)), s4.x1.eq(_min_tmax(s3.xd + p.jump_pre)),
            s4.y0.eq(_min_tmax(s3.yd)), s4.y1.eq(_min_tmax(s3.yd + p.jump_post)),
        ]

        # stage 5: membrane, spike, reset, refractory counter, traces
        s5 = Signal(data.StructLayout({
            "valid": 1, "tag": unsigned(tb), "v": signed(V_BITS),
            "i": signed(I_BITS), "ref": unsigned(TREF_BITS), "spike": 1,
            "pre": unsigned(TRACE_BITS), "post": unsigned(TRACE_BITS),
        }))
        v_fits = _fits(s4.vsum, V_BITS)
        v_neg = s4.vsum[-1]
        v_int = Mux(v_fits, s4.vsum[:V_BITS].as_signed(), Mux(v_neg, _LO16, _HI16))
        # sat16(vsum) >= threshold without waiting for the saturation: vsumt = vsum - threshold
        reached = Mux(v_fits, ~s4.vsumt[-1], ~v_neg | s4.th_lo)
        spike = ~s4.refr & reached
        m.d.sync += [
            s5.valid.eq(s4.valid), s5.tag.eq(s4.tag), s5.i.eq(s4.i), s5.spike.eq(spike),
            s5.v.eq(Mux(spike, s4.v_reset, Mux(s4.refr, s4.v, v_int))),
            s5.ref.eq(Mux(s4.refr, s4.ref_m1, Mux(spike, s4.t_ref, 0))),
            s5.pre.eq(Mux(spike, s4.x1, s4.x0)), s5.post.eq(Mux(spike, s4.y1, s4.y0)),
        ]

        # stage 6: STDP amounts for the traces just computed
        o = self.out.payload
        m.d.sync += [
            self.out.valid.eq(s5.valid), o.tag.eq(s5.tag), o.v.eq(s5.v), o.i.eq(s5.i),
            o.ref.eq(s5.ref), o.spike.eq(s5.spike), o.pre.eq(s5.pre), o.post.eq(s5.post),
            o.d.eq(_round8(p.a_minus * s5.post)), o.q.eq(_round8(p.a_plus * s5.pre)),
        ]
        return m


class TraceUnit(wiring.Component):
    """One input-axon trace per clock: ``x' = min(255, decay_trace(x) + jump*s)``
    and ``q = stdp_delta(A+, x')``; ``LATENCY`` clocks.

    ``LATENCY`` stays ``NeuronUnit.LATENCY - 2``: the core writes the amounts of
    both units in the same clock to different memories (``hdl/core.py``).

    1. product ``x * alpha_pre``; 2. decayed trace plus jump, limited to 255;
    3. product ``A+ * x'``; 4. its rounding.
    """

    LATENCY = 4

    def __init__(self, tag_bits: int):
        self.tag_bits = tag_bits
        super().__init__({
            "inp": In(stream.Signature(trace_in_layout(tag_bits), always_ready=True)),
            "out": Out(stream.Signature(trace_out_layout(tag_bits), always_ready=True)),
            "params": In(StepParams),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        a = self.inp.payload
        v1, t1, s1 = Signal(), Signal(self.tag_bits), Signal()
        px = Signal(TRACE_BITS + ALPHA_BITS)
        m.d.sync += [v1.eq(self.inp.valid), t1.eq(a.tag), s1.eq(a.spike), px.eq(a.x * p.alpha_pre)]
        v2, t2 = Signal(), Signal(self.tag_bits)
        x2 = Signal(TRACE_BITS)
        m.d.sync += [v2.eq(v1), t2.eq(t1),
                     x2.eq(_min_tmax((px >> DECAY_FRAC_BITS) + Mux(s1, p.jump_pre, 0)))]
        # the STDP product is registered (in the DSP) and rounded a clock later
        v3, t3 = Signal(), Signal(self.tag_bits)
        x3 = Signal(TRACE_BITS)
        pq = Signal(STDP_A_BITS + TRACE_BITS)
        m.d.sync += [v3.eq(v2), t3.eq(t2), x3.eq(x2), pq.eq(p.a_plus * x2)]
        o = self.out.payload
        m.d.sync += [self.out.valid.eq(v3), o.tag.eq(t3), o.x.eq(x3), o.q.eq(_round8(pq))]
        return m
