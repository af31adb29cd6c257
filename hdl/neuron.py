"""Pipelined neuron update and trace update (spec phases 3 and 4).

:class:`NeuronUnit` takes one neuron per clock and returns its new state
``LATENCY - 1`` clocks later and its STDP amounts one clock after that;
:class:`TraceUnit` returns the trace of an input axon ``LATENCY`` clocks later.
Both are free of stalls: the caller feeds them from memories and writes their
results back at other addresses.
"""

from __future__ import annotations

from amaranth.hdl import C, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..formats import (V_BITS, I_BITS, TREF_BITS, TRACE_BITS, ALPHA_BITS, STDP_A_BITS,
                       DECAY_FRAC_BITS, STDP_FRAC_BITS, signed_range)

__all__ = ["NeuronUnit", "TraceUnit", "neuron_in_layout", "neuron_late_signature",
           "neuron_out_layout", "neuron_amounts_layout", "trace_in_layout", "trace_out_layout",
           "StepParams"]

_LO16, _HI16 = signed_range(V_BITS)
_T_MAX = (1 << TRACE_BITS) - 1


def neuron_in_layout(acc_bits: int, tag_bits: int) -> data.StructLayout:
    return data.StructLayout({
        "tag": unsigned(tag_bits),
        "acc": signed(acc_bits),            # raw weight sum of the step
        "v": signed(V_BITS), "i": signed(I_BITS),
        "threshold": signed(V_BITS), "v_rest": signed(V_BITS), "alpha_i": unsigned(ALPHA_BITS),
    })


def neuron_late_signature(tag_bits: int) -> wiring.Signature:
    """Operands the unit reads when a stage needs them (see :class:`NeuronUnit`):
    each ``*_tag`` names the neuron whose values must arrive the next clock."""
    return wiring.Signature({
        "alpha_v_tag": Out(tag_bits), "alpha_v": In(unsigned(ALPHA_BITS)),
        "trace_tag": Out(tag_bits), "pre": In(TRACE_BITS), "post": In(TRACE_BITS),
        "ref_tag": Out(tag_bits), "ref": In(TREF_BITS), "t_ref": In(TREF_BITS),
        "v_reset_tag": Out(tag_bits), "v_reset": In(signed(V_BITS)),
    })


def neuron_out_layout(tag_bits: int) -> data.StructLayout:
    return data.StructLayout({
        "tag": unsigned(tag_bits),
        "v": signed(V_BITS), "v_we": 1,     # v_we = 0: refractory, v keeps its value
        "i": signed(I_BITS), "ref": unsigned(TREF_BITS),
        "pre": unsigned(TRACE_BITS), "post": unsigned(TRACE_BITS),
        "spike": 1,
    })


def neuron_amounts_layout(tag_bits: int) -> data.StructLayout:
    return data.StructLayout({
        "tag": unsigned(tag_bits),
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
#: decayed current: |decay(i)| < 2**16 (alpha < 2.0), so a shifted sum outside
#: +-2**17 leaves ``|sum| > 2**16`` either way and ``sat16`` gives the same
#: ``i'``; the adder stays short and the 19-bit sum's saturation test needs
#: only its top four bits (one LUT).
_ACS_BITS = 18
_ACS_LO, _ACS_HI = signed_range(_ACS_BITS)


#: Attributes of a register that also feeds a multiplier whose product is
#: registered: Yosys would copy it into the SB_MAC16's input register, and the
#: copy left in the fabric could not share a cell with the LUT that drives it
#: (two cells per bit instead of one)
_NOT_IN_DSP = {"keep": 1}


def _input_stage(m, inp, register):
    """The unit's input payload and valid, registered once if ``register``."""
    if not register:
        return inp.payload, inp.valid
    payload = Signal.like(inp.payload, name="in_reg")
    valid = Signal(name="in_valid")
    m.d.sync += [payload.eq(inp.payload), valid.eq(inp.valid)]
    return payload, valid


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


def _shl_overflows(value, shift):
    """``value << shift`` (signed) leaves the ``_ACS_BITS``-bit range: a bit that
    lands at or above the top bit differs from the sign.  Works on ``value`` and
    the shift amount directly (parallel to the shifter), a few LUT levels."""
    sign = value[-1]
    terms = []
    for j in range(len(value) - 1):
        amounts = [s for s in range(1 << len(shift)) if j + s >= _ACS_BITS - 1]
        if amounts:
            terms.append((value[j] ^ sign) & shift.matches(*amounts))
    return Cat(*terms).any() if terms else C(0, 1)


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

    Every stage holds at most one carry chain (parallel chains are fine) and a
    few LUT levels: saturation tests look at the top bits only (no comparator
    chain), carries of the rounding join a later adder, and the multipliers'
    products (or operands, in stage 6) sit in registers that Yosys packs into
    the SB_MAC16s.  Data registers have no reset; only the valid bits do.

    An operand that only a later stage needs is not carried through the
    pipeline (on the iCE40 a register loaded from another register takes a
    logic cell per bit): the unit asks for it on ``late`` two clocks before
    that stage (three with ``input_register``, which then registers it), the
    way the caller's synchronous RAMs read.  The membrane is not carried
    either: while refractory ``out.v_we`` is low and the caller keeps ``v``.

    1. ``u = sat16(v - v_rest)``, ``v_rest - threshold``; product
       ``i * alpha_i``.
    2. (``alpha_v``) ``i * (alpha_i >= 1.0) + (product >> 15)`` and its
       rounding carry; product ``u * alpha_v``; ``v_rest`` plus the
       whole-number part of the membrane decay (and the same minus
       ``threshold``); ``acc << w_shift`` and whether it leaves 18 bits.
    3. (``pre``, ``post``) ``v_rest + decay(u)`` without its rounding carry
       (and the same minus ``threshold``); ``decay(i) + (acc << w_shift)`` with
       the shifted sum clamped to 18 bits; products ``pre * alpha_pre``,
       ``post * alpha_post``.
    4. (``ref``, ``t_ref``) ``i' = sat16(...)``; membrane sum before
       saturation (and minus ``threshold``); refractory test and ``ref - 1``;
       both candidate traces (with and without a spike).
    5. (``v_reset``) spike, reset, refractory counter, traces (LUTs only):
       ``out``.
    6. STDP amounts of the new traces: ``amounts``.

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
        clock edge).  The late operands are asked for one clock earlier and
        registered too.

    Members
    -------
    inp : In(stream, always ready)
    late : Out(neuron_late_signature)
        For each group, ``x_tag`` shows a neuron in the pipeline; the values of
        the neuron shown on ``x_tag`` must arrive the next clock (a synchronous
        RAM read addressed by ``x_tag``).  Shown every clock, valid or not.
    out : Out(stream)
        The new state, valid ``latency - 1`` clocks after the input.
    amounts : Out(stream)
        ``d`` and ``q``, valid ``latency`` clocks after the input.
    params : In(StepParams)
        Read combinationally in several stages: hold them during a pass.
    """

    LATENCY = 6

    def __init__(self, acc_bits: int, tag_bits: int, input_register: bool = False):
        self.acc_bits = acc_bits
        self.tag_bits = tag_bits
        self.input_register = bool(input_register)
        #: clocks from input to ``amounts`` (``out``: one less)
        self.latency = self.LATENCY + self.input_register
        super().__init__({
            "inp": In(stream.Signature(neuron_in_layout(acc_bits, tag_bits), always_ready=True)),
            "late": Out(neuron_late_signature(tag_bits)),
            "out": Out(stream.Signature(neuron_out_layout(tag_bits), always_ready=True)),
            "amounts": Out(stream.Signature(neuron_amounts_layout(tag_bits), always_ready=True)),
            "params": In(StepParams),
        })

    def elaborate(self, platform):
        m = Module()
        p, late = self.params, self.late
        a, a_valid = _input_stage(m, self.inp, self.input_register)
        tb = self.tag_bits
        # tags[n]: the neuron in stage n's register (0: the input, -1: before the input register)
        tags = {0: a.tag, -1: self.inp.payload.tag}

        def ask(stage, tag, values):
            """Late operands for ``stage``: the tag two clocks ahead goes to the
            RAM, whose data arrives while the previous stage holds the neuron."""
            m.d.comb += tag.eq(tags[stage - 2 - self.input_register])
            if not self.input_register:
                return values
            regs = [Signal.like(v, name=f"{v.name}_late", reset_less=True) for v in values]
            m.d.sync += [r.eq(v) for r, v in zip(regs, values)]
            return regs

        # stage 1 (only what later stages need is registered: pass-through bits cost cells)
        v1 = Signal(name="valid1")
        s1 = Signal(data.StructLayout({
            "tag": unsigned(tb), "v_rest": signed(V_BITS), "th_lo": 1,
            "u": signed(V_BITS), "vrt": signed(V_BITS + 1), "acc": signed(self.acc_bits),
            "im": signed(I_BITS), "ineg": 1,
        }), reset_less=True, attrs=_NOT_IN_DSP)
        # products in registers of their own, which the DSPs can absorb
        pi = Signal(signed(V_BITS + DECAY_FRAC_BITS), reset_less=True)
        m.d.sync += pi.eq(a.i * a.alpha_i[:DECAY_FRAC_BITS])
        m.d.sync += [
            v1.eq(a_valid), s1.tag.eq(a.tag), s1.v_rest.eq(a.v_rest),
            s1.th_lo.eq(a.threshold == _LO16),
            s1.u.eq(_sat16(a.v - a.v_rest)), s1.vrt.eq(a.v_rest - a.threshold),
            s1.acc.eq(a.acc),
            s1.im.eq(Mux(a.alpha_i[DECAY_FRAC_BITS], a.i, 0)), s1.ineg.eq(a.i < 0),
        ]
        tags[1] = s1.tag

        # stage 2
        alpha_v, = ask(2, late.alpha_v_tag, [late.alpha_v])
        v2 = Signal(name="valid2")
        s2 = Signal(data.StructLayout({
            "tag": unsigned(tb), "th_lo": 1, "vneg": 1,
            "rv": signed(V_BITS + 1), "rvt": signed(V_BITS + 2),
            "di": signed(I_BITS + 2), "cin_i": 1,
            "acs": signed(_ACS_BITS), "acs_ovf": 1, "acs_neg": 1,
        }), reset_less=True)
        pv = Signal(signed(V_BITS + DECAY_FRAC_BITS), reset_less=True)
        m.d.sync += pv.eq(s1.u * alpha_v[:DECAY_FRAC_BITS])
        vm = Mux(alpha_v[DECAY_FRAC_BITS], s1.u, 0)
        m.d.sync += [
            v2.eq(v1), s2.tag.eq(s1.tag), s2.th_lo.eq(s1.th_lo),
            s2.vneg.eq(s1.u < 0),
            s2.rv.eq(s1.v_rest + vm), s2.rvt.eq(s1.vrt + vm),
            # the rounding carries of both decays are added one stage after their
            # products' (the test of 15 product bits would lengthen the adder's stage)
            s2.di.eq(s1.im + (pi >> DECAY_FRAC_BITS)), s2.cin_i.eq(_round_up(s1.ineg, pi)),
            s2.acs.eq((s1.acc << p.w_shift)[:_ACS_BITS]), s2.acs_ovf.eq(_shl_overflows(s1.acc, p.w_shift)),
            s2.acs_neg.eq(s1.acc[-1]),
        ]
        tags[2] = s2.tag

        # stage 3; the trace products land where stage 4 needs them
        pre, post = ask(3, late.trace_tag, [late.pre, late.post])
        xp = Signal(TRACE_BITS + ALPHA_BITS, reset_less=True)
        yp = Signal(TRACE_BITS + ALPHA_BITS, reset_less=True)
        m.d.sync += [xp.eq(pre * p.alpha_pre), yp.eq(post * p.alpha_post)]
        v3 = Signal(name="valid3")
        s3 = Signal(data.StructLayout({
            "tag": unsigned(tb), "th_lo": 1,
            "vd": signed(V_BITS + 2), "vdt": signed(V_BITS + 3), "cin_v": 1,
            "isum": signed(_ACS_BITS + 1),
        }), reset_less=True)
        m.d.sync += [
            v3.eq(v2), s3.tag.eq(s2.tag), s3.th_lo.eq(s2.th_lo),
            s3.vd.eq(s2.rv + (pv >> DECAY_FRAC_BITS)), s3.vdt.eq(s2.rvt + (pv >> DECAY_FRAC_BITS)),
            s3.cin_v.eq(_round_up(s2.vneg, pv)),
            s3.isum.eq(_add_cin(m, s2.di, Mux(s2.acs_ovf, Mux(s2.acs_neg, _ACS_LO, _ACS_HI), s2.acs),
                                s2.cin_i)),
        ]
        tags[3] = s3.tag

        # stage 4
        ref, t_ref = ask(4, late.ref_tag, [late.ref, late.t_ref])
        v4 = Signal(name="valid4")
        s4 = Signal(data.StructLayout({
            "tag": unsigned(tb), "refr": 1,
            "ref_m1": unsigned(TREF_BITS), "t_ref": unsigned(TREF_BITS), "th_lo": 1,
            "i": signed(I_BITS),
            # |v_rest + decay(u) + i'| < 2**15 + 2**16 + 2**15: 18 bits, so the
            # saturation test in stage 5 looks at three bits
            "vsum": signed(V_BITS + 2), "vsumt": signed(V_BITS + 3),
            "x0": unsigned(TRACE_BITS), "x1": unsigned(TRACE_BITS),
            "y0": unsigned(TRACE_BITS), "y1": unsigned(TRACE_BITS),
        }), reset_less=True)
        i_new = Signal(signed(I_BITS))
        m.d.comb += i_new.eq(_sat16(s3.isum))
        xd, yd = xp >> DECAY_FRAC_BITS, yp >> DECAY_FRAC_BITS
        m.d.sync += [
            v4.eq(v3), s4.tag.eq(s3.tag), s4.refr.eq(ref != 0),
            s4.ref_m1.eq(ref - 1), s4.t_ref.eq(t_ref),
            s4.th_lo.eq(s3.th_lo), s4.i.eq(i_new),
            s4.vsum.eq(_add_cin(m, s3.vd, i_new, s3.cin_v)),
            s4.vsumt.eq(_add_cin(m, s3.vdt, i_new, s3.cin_v)),
            # the traces with and without a spike, chosen in stage 5
            s4.x0.eq(_min_tmax(xd)), s4.x1.eq(_min_tmax(xd + p.jump_pre)),
            s4.y0.eq(_min_tmax(yd)), s4.y1.eq(_min_tmax(yd + p.jump_post)),
        ]
        tags[4] = s4.tag

        # stage 5: membrane, spike, reset, refractory counter, traces
        v_reset, = ask(5, late.v_reset_tag, [late.v_reset])
        v5 = Signal(name="valid5")
        # (the STDP multipliers take pre and post into their input registers:
        # a fabric-only register would leave them without a clocked path)
        s5 = Signal(neuron_out_layout(tb), reset_less=True)
        v_fits = _fits(s4.vsum, V_BITS)
        v_neg = s4.vsum[-1]
        v_int = Mux(v_fits, s4.vsum[:V_BITS].as_signed(), Mux(v_neg, _LO16, _HI16))
        # sat16(vsum) >= threshold without waiting for the saturation (vsumt =
        # vsum - threshold): above the range always, below it only for threshold = -2**15
        reached = Mux(v_fits, ~s4.vsumt[-1], ~v_neg | s4.th_lo)
        spike = ~s4.refr & reached
        m.d.sync += [
            v5.eq(v4), s5.tag.eq(s4.tag), s5.i.eq(s4.i), s5.spike.eq(spike),
            s5.v.eq(Mux(spike, v_reset, v_int)), s5.v_we.eq(~s4.refr),
            s5.ref.eq(Mux(s4.refr, s4.ref_m1, Mux(spike, s4.t_ref, 0))),
            s5.pre.eq(Mux(spike, s4.x1, s4.x0)), s5.post.eq(Mux(spike, s4.y1, s4.y0)),
        ]
        m.d.comb += [self.out.valid.eq(v5), self.out.payload.eq(s5)]

        # stage 6: STDP amounts for the traces just computed
        v6 = Signal(name="valid6")
        s6 = Signal(neuron_amounts_layout(tb), reset_less=True)
        m.d.sync += [
            v6.eq(v5), s6.tag.eq(s5.tag),
            s6.d.eq(_round8(p.a_minus * s5.post)), s6.q.eq(_round8(p.a_plus * s5.pre)),
        ]
        m.d.comb += [self.amounts.valid.eq(v6), self.amounts.payload.eq(s6)]
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
        # data registers without reset (cheaper cells; products can sit in the DSPs)
        v1 = Signal()
        t1, s1 = Signal(self.tag_bits, reset_less=True), Signal(reset_less=True)
        px = Signal(TRACE_BITS + ALPHA_BITS, reset_less=True)
        m.d.sync += [v1.eq(a_valid), t1.eq(a.tag), s1.eq(a.spike), px.eq(a.x * p.alpha_pre)]
        v2, t2 = Signal(), Signal(self.tag_bits, reset_less=True)
        x2 = Signal(TRACE_BITS, reset_less=True)
        m.d.sync += [v2.eq(v1), t2.eq(t1),
                     x2.eq(_min_tmax((px >> DECAY_FRAC_BITS) + Mux(s1, p.jump_pre, 0)))]
        # the STDP product is registered (in the DSP) and rounded a clock later
        v3, t3 = Signal(), Signal(self.tag_bits, reset_less=True)
        x3 = Signal(TRACE_BITS, reset_less=True)
        pq = Signal(STDP_A_BITS + TRACE_BITS, reset_less=True)
        m.d.sync += [v3.eq(v2), t3.eq(t2), x3.eq(x2), pq.eq(p.a_plus * x2)]
        o = self.out.payload
        m.d.sync += [self.out.valid.eq(v3), o.tag.eq(t3), o.x.eq(x3), o.q.eq(_round8(pq))]
        return m
