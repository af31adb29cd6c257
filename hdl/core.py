"""The NeuroCoreX core: all-to-all CUBA-LIF neurons with on-chip STDP.

One time step runs these phases in order (``docs/spec.md`` §3,
``docs/architecture.md`` for the cycle budget):

``DPASS``  only when learning is on and the bus wrote something since the last
           step: recompute the depression amounts ``d_j = stdp_delta(A-, y_j)``.
``ROWS``   integration and depression: for every source that spiked (the
           previous step's spikes, then this step's input events) read its row,
           ``B*L`` synapses per clock, add the old weights into the per-neuron
           accumulators and write back the depressed word (only if it changed).
``PASS``   neuron update and traces, one neuron (and one input axon) per clock.
``POT``    potentiation: for every neuron that spiked, read its column, ``B``
           source rows per clock, and write back the words that changed.
``OUT``    stream the spiking neurons, then the end marker.

With ``overlap_rows`` (learning off) the rows of the spikes that ``PASS``
emits are integrated during the pass into the other accumulator set, and the
next step's ``ROWS`` reads only its input events' rows.
"""

from __future__ import annotations

from amaranth.back import rtlil
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory, MemoryData

from ..formats import (CoreConfig, NEURON_PARAMS, NEURON_STATE, STDP_FIELDS, GLOBAL_FIELDS,
                       TRACE_BITS, V_BITS, DECAY_ONE, signed_range)
from ..errors import RangeError
from ..regmap import Region, Counter, DATA_BITS, REGION_BITS, index_bits
from .divider import ConstDivider
from .geometry import Geometry
from .layouts import core_ports
from .ramports import NO_RW_CHECK, RegisteredRead
from .neuron import NeuronUnit, TraceUnit, StepParams
from .synapse import synapse_update

__all__ = ["Core", "CONTROLLER_STATE"]

#: Name of the controller's state register in the netlist.  Amaranth gives it
#: an initial value, which keeps Yosys from re-encoding the state machine;
#: the board builds remove that attribute (the reset still sets the state) so
#: that Yosys encodes it one-hot, which shortens the controller's paths.
CONTROLLER_STATE = "ctrl_state"

_PARAM = {f.name: k for k, f in enumerate(NEURON_PARAMS)}
_STATE = {f.name: k for k, f in enumerate(NEURON_STATE)}
_CHAIN = [c for c in Counter if c != Counter.LAST_STEP_CYCLES]   # counters kept in a RAM
_W16 = ("threshold", "v_reset", "v_rest", "alpha_v", "alpha_i")   # 16-bit parameter memories


def _bits(n: int) -> int:
    return max(1, (n - 1).bit_length())


class _AddressRegisteredRead:
    """The ports of :class:`RegisteredRead` for a memory that reads
    asynchronously (LUT RAM): the address goes into a register and the
    memory is read from it, so that the register sits before the memory, not
    after it.  The data differs only when a write meets the registered
    address in the clock it is registered or held, which the core never
    does (see ``mem`` in :meth:`Core.elaborate`); ``poison`` (a write port)
    makes such a read return garbage in simulation."""

    def __init__(self, m, port, name, poison=None):
        self.addr = Signal.like(port.addr, name=f"{name}_raddr")
        self.en = Signal(init=1, name=f"{name}_ren")
        addr_r = Signal.like(port.addr, name=f"{name}_raddr_r", reset_less=True)
        with m.If(self.en):
            m.d.sync += addr_r.eq(self.addr)
        m.d.comb += port.addr.eq(addr_r)
        # (made like RegisteredRead's: the pipeline registers are made like it)
        self.data = Signal.like(port.data, name=f"{name}_rdata", reset_less=True,
                                attrs={"init": rtlil.Undef(len(port.data))})
        if poison is None:
            m.d.comb += self.data.eq(port.data)
        else:
            hit = Signal(name=f"{name}_hit")
            m.d.sync += hit.eq(poison.en.any() & (poison.addr == Mux(self.en, self.addr, addr_r)))
            m.d.comb += self.data.eq(Mux(hit, ~port.data, port.data))


class _RegisteredWrite:
    """``addr``, ``data`` and ``en`` of a write port, written a clock later
    from registers (which the placer can put beside the block RAM)."""

    def __init__(self, m, port, name):
        self.addr = Signal.like(port.addr, name=f"{name}_waddr")
        self.data = Signal.like(port.data, name=f"{name}_wdata")
        self.en = Signal.like(port.en, name=f"{name}_wen")
        regs = [Signal.like(x, name=f"{x.name}_r", reset_less=x is not self.en)
                for x in (self.addr, self.data, self.en)]
        m.d.sync += [r.eq(x) for r, x in zip(regs, (self.addr, self.data, self.en))]
        m.d.comb += [port.addr.eq(regs[0]), port.data.eq(regs[1]), port.en.eq(regs[2])]


def _or_lanes(values):
    out = values[0].as_unsigned()
    for v in values[1:]:
        out = out | v.as_unsigned()
    return out


def _amt_d_place(k: int, banks: int) -> tuple[int, int]:
    """``(memory, byte)`` of ``d`` for post lane ``k`` of a column (``k = j mod P``).

    Post ``j`` goes to amount memory ``(j + 1) mod B``: ``q`` of neuron ``j`` is
    in memory ``j mod B`` and ``q`` of axon ``j + 2`` in ``(j + 2) mod B``, so the
    three writes of one clock of the neuron pass never meet.
    """
    return (k + 1) % banks, k // banks


def _rotate(m, words, amount, direction, name):
    """``out[e] = words[(e + direction*amount) mod B]`` as a barrel rotator
    (log2(B) layers of 2:1 multiplexers, each shared by every output)."""
    n = len(words)
    cur = list(words)
    for s in range(n.bit_length() - 1):
        k = 1 << s
        nxt = [Signal.like(cur[0], name=f"{name}{e}_r{s}") for e in range(n)]
        for e in range(n):
            m.d.comb += nxt[e].eq(Mux(amount[s], cur[(e + direction * k) % n], cur[e]))
        cur = nxt
    return cur


def _select(m, words, selects, name):
    """``out[e] = words[selects[e]]``: the rotation of :func:`_rotate` with each
    output's source index given (from a register), one wide multiplexer per
    output (an 8:1 multiplexer is one slice level on ECP5, against three LUT
    levels for the barrel rotator)."""
    out = []
    for e, sel in enumerate(selects):
        o = Signal.like(words[0], name=f"{name}{e}")
        m.d.comb += o.eq(Array(words)[sel])
        out.append(o)
    return out


class Core(wiring.Component):
    """One core of ``N`` neurons and ``M`` input axons.

    Parameters
    ----------
    config : CoreConfig
        Elaboration-time shape.
    banks : int
        Synapse banks (power of two, default 4: the four SPRAMs of an iCE40 UP5K).
    dual_port : bool
        Give each synapse bank a separate read and write port (ECP5 block RAM),
        so that a read-modify-write takes one clock instead of two.  Leave it
        off for single-port RAM (iCE40 SPRAM).
    synapse_attrs : dict or None
        Attributes of the synapse bank memories, e.g. ``{"ram_style": "huge"}``
        so that Yosys maps them to iCE40 SPRAM.
    bank_memory : callable or None
        Builds one synapse bank instead of a :class:`~amaranth.lib.memory.Memory`:
        ``bank_memory(data, granularity)`` gets the bank's ``MemoryData`` and
        write granularity and returns ``(elaboratable, read_port, write_port)``
        whose ports behave like a ``Memory``'s (read: ``addr``, ``en``, ``data``
        one clock later, not transparent; write: ``addr``, ``data``, ``en``;
        the core passes ``granularity=None``: it writes whole words).  Used by
        board tops, e.g. for a RAM clocked twice as fast.  An elaboratable
        with ``read_latency = 2`` returns its read data two clocks after the
        address, from registers of its own (e.g. a
        :class:`~neurocorex.hdl.sliced.SlicedRAM` with ``block_depth``): the
        core gives it one more pipeline stage; other latencies are refused.
        With ``poison_collisions`` the core calls ``bank_memory(data,
        granularity, poison=True)``: the bank's reads of a word written in
        the same clock should then return garbage.
    poison_collisions : bool
        Simulation check: a block RAM read of the address written in the same
        clock returns the inverted word instead of the old one.  The core
        must not depend on such reads (its RAMs are built without collision
        logic); the tests run with this on.
    register_unit_inputs : bool or None
        Register the neuron and trace units' inputs (one more clock per pass)
        and an input event's flag before its duplicate check (one event per
        three clocks instead of one per clock), so that block RAM outputs
        drive only registers: needed for a fast clock on ECP5, a waste of
        about 200 logic cells on the iCE40.  With it the rows also take their
        spike-list entry from a register (one more clock per step), the
        saturation bound comes from a register, the rows write the
        accumulators a clock late from registers (a read of the word whose
        write waits takes the waiting sum), the next spike-list address comes
        from a register, and with ``dual_port`` each bank writes back its own
        word when that word changed.  Default: on with ``dual_port``.
    register_bank_outputs : bool
        Register the synapse banks' read data before the STDP update (one
        more clock of pipeline latency): block RAM and SPRAM outputs arrive
        late in the clock.  The accumulators' read data is registered with
        it, so that their read-add-write loop has a register in it.  Turn it
        off for banks whose read data already comes from a fabric register
        (:class:`~neurocorex.hdl.spram.DoublePumpedRAM`): saves a 16-bit
        register per bank and per pipeline stage, and the accumulator words'.

    overlap_rows : bool
        Integrate the next step's recurrent rows during the neuron pass, as
        its spikes come out, into a second set of accumulator memories (the
        sets swap roles every step).  Only in steps with learning off; if the
        bus writes anything before the next step starts, the early sums are
        cleared and the rows read again.  Saves up to ``min(T, rows)`` clocks
        per step; costs ``P`` more accumulator memories (block RAM on ECP5).

    accumulator_attrs : dict or None
        Attributes of the accumulator memories, e.g. ``{"ram_style":
        "distributed"}`` for LUT RAM (ECP5) where block RAMs are scarce.
        LUT RAM reads asynchronously: with ``"distributed"`` the core
        registers the accumulators' read address instead of their read data.

    Members
    -------
    bus : In(stream) of ``{addr, wdata, write}``
        Configuration bus, decoded per :mod:`neurocorex.regmap`; served only
        between steps.
    bus_resp : Out(stream) of ``{rdata}``
        One response per request (0 for writes).
    events : In(stream) of ``{index, end}``
        Input spikes of the step being collected; ``end=1`` runs the step.
    spikes : Out(stream) of ``{index, end}``
        The step's spiking neurons in increasing order, then ``end=1``.
    """

    def __init__(self, config: CoreConfig, *, banks: int = 4, dual_port: bool = False,
                 synapse_attrs=None, bank_memory=None, poison_collisions=False,
                 register_unit_inputs=None, register_bank_outputs=True, overlap_rows=False,
                 accumulator_attrs=None):
        self.config = config
        self.register_unit_inputs = bool(dual_port if register_unit_inputs is None
                                         else register_unit_inputs)
        self.poison_collisions = bool(poison_collisions)
        self.register_bank_outputs = bool(register_bank_outputs)
        self.overlap_rows = bool(overlap_rows)
        self.accumulator_attrs = dict(accumulator_attrs or {})
        self.bank_memory = bank_memory
        self.dual_port = bool(dual_port)
        if banks < 4 or banks & (banks - 1):
            self._MustUse__silence = True      # (not an unused design: a refused one)
            raise RangeError(f"banks must be a power of two >= 4, got {banks}")
        self.geometry = geo = Geometry(config, banks=banks)
        self.synapse_attrs = dict(synapse_attrs or {})
        n, m = config.neurons, config.inputs
        super().__init__(core_ports(config))
        # Memory contents live in MemoryData objects created here, so that a
        # simulation can preload them (see neurocorex.sim.amaranth_core).
        md = self.mem = {}
        for b in range(geo.banks):
            md[f"syn{b}"] = MemoryData(shape=unsigned(geo.width), depth=geo.depth, init=[])
        for name in _W16:
            init = [signed_range(V_BITS)[1] & 0xFFFF] * n if name == "threshold" else []
            md[name] = MemoryData(shape=unsigned(16), depth=n, init=init)
        md["v"] = MemoryData(shape=unsigned(16), depth=n, init=[])
        md["i"] = MemoryData(shape=unsigned(16), depth=n, init=[])
        md["ref_tref"] = MemoryData(shape=unsigned(16), depth=n, init=[])   # lanes: ref, t_ref
        md["traces"] = MemoryData(shape=unsigned(16), depth=n, init=[])     # lanes: pre, post
        # one accumulator memory per lane k (posts P*c + k at address c); the
        # upper half is never written and reads 0 (see the neuron pass)
        # (with overlap_rows a second set, acc{k}_1)
        for k in range(geo.posts):
            for suffix in ("", "_1") if self.overlap_rows else ("",):
                md[f"acc{k}{suffix}"] = MemoryData(shape=signed(geo.acc_bits),
                                                   depth=2 << _bits(geo.cols), init=[])
        # STDP amounts, one memory per bank position e (see _amt_*): q of
        # source rows B*kk + e at address kk, then d of this step's posts
        for e in range(geo.banks):
            md[f"amt{e}"] = MemoryData(shape=unsigned(geo.lanes * TRACE_BITS),
                                       depth=geo.row_groups + geo.cols, init=[])
        # spike list (entries 0..N-1) and input event list (entries N..N+M-1) share a RAM
        # the step counters but LAST_STEP_CYCLES (a register), in Counter order
        md["counters"] = MemoryData(shape=unsigned(DATA_BITS), depth=len(_CHAIN), init=[])
        md["slist"] = MemoryData(shape=unsigned(_bits(max(n, m))), depth=n + m, init=[])
        if m:
            # lanes: input trace, "axon k spiked in the step being collected"
            md["itrace"] = MemoryData(shape=unsigned(16), depth=m, init=[])
        #: initial values of the STDP and global registers and of the number of
        #: pending spikes (simulation preload)
        self.reg_init = {f.name: 0 for f in STDP_FIELDS + GLOBAL_FIELDS}
        self.reg_init["w_min"], self.reg_init["w_max"] = config.weight_range

    # ------------------------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        cfg, geo = self.config, self.geometry
        N, M = cfg.neurons, cfg.inputs
        B, L, P, C = geo.banks, geo.lanes, geo.posts, geo.cols
        SB, WB, AW = cfg.synapse_bits, cfg.weight_bits, geo.acc_bits
        lb, bb, pb = L.bit_length() - 1, B.bit_length() - 1, P.bit_length() - 1
        T = max(N, M)
        IB = index_bits(cfg)

        # ---- memories and ports ----------------------------------------------------------
        def mem(name, *, granularity=None, attrs=None, address_register=False):
            # An asynchronous read port and a register behave like a synchronous
            # port (old data when the address is written in the same clock);
            # Yosys merges the register into the block RAM and, told by
            # no_rw_check, leaves out the logic that would make such a
            # collision return the old data: the core never uses a word read
            # while it is written (see docs/architecture.md, §2).
            mm = Memory(self.mem[name], attrs={**NO_RW_CHECK, **(attrs or {})})
            m.submodules[f"mem_{name}"] = mm
            wp = mm.write_port(granularity=granularity)
            read = _AddressRegisteredRead if address_register else RegisteredRead
            rp = read(m, mm.read_port(domain="comb"), name,
                      poison=wp if self.poison_collisions else None)
            return rp, wp

        K = 0                             # pipeline stages inside the banks
        if self.bank_memory is None:
            # the banks keep synchronous ports: a single-port RAM reads nothing
            # while it writes (see the read enables below)
            syn = []
            for b in range(B):
                bank = Memory(self.mem[f"syn{b}"], attrs=self.synapse_attrs)
                m.submodules[f"mem_syn{b}"] = bank
                wp = bank.write_port()
                syn.append((bank.read_port(), wp))
        else:
            syn = []
            poison = {"poison": True} if self.poison_collisions else {}
            for b in range(B):
                bank, rp, wp = self.bank_memory(self.mem[f"syn{b}"], None, **poison)
                m.submodules[f"mem_syn{b}"] = bank
                syn.append((rp, wp))
            latency = getattr(bank, "read_latency", 1)
            if latency not in (1, 2):
                for refused in [m] + [m.submodules[f"mem_syn{b}"] for b in range(B)]:
                    refused._MustUse__silence = True     # (refused: nothing to elaborate)
                raise ValueError(f"bank memories must read in 1 or 2 clocks, not {latency}")
            # a bank with registers of its own: one more pipeline stage
            K = latency - 1
        prm = {name: mem(name) for name in _W16}
        st_v, st_i = mem("v"), mem("i")
        reftr = mem("ref_tref", granularity=8)
        traces = mem("traces", granularity=8)
        OV = self.overlap_rows
        # accumulators in LUT RAM (which reads asynchronously) register their
        # read address: their address logic is deep, and a data register would
        # leave the RAM and its output multiplexers in the same path
        lut_acc = self.accumulator_attrs.get("ram_style") == "distributed"
        acc_sets = [[mem(f"acc{k}{suffix}", attrs=self.accumulator_attrs,
                         address_register=lut_acc) for k in range(P)]
                    for suffix in (("", "_1") if OV else ("",))]
        acc = [port for ports in acc_sets for port in ports]
        cb = _bits(C)
        acc_addr = Signal(cb)            # word of the access (the zero half when not selected)
        acc_lane_off = Signal(P)          # lanes that read the zero half
        acc_wen = Signal()
        acc_waddr = Signal(cb)
        acc_wdata = [Signal(signed(AW), name=f"acc_wdata{k}") for k in range(P)]
        if OV:
            # The rows drive acc_addr/acc_w* into set row_set, the pass its own
            # p_* signals into set cur (the step's: the pass reads and clears it).
            # While the pass reads set cur, the next step's rows go to the other.
            cur = Signal()                # accumulator set of the step
            row_set = Signal()            # set of the rows in flight
            p_on = Signal()               # the pass reads set cur
            p_addr, p_waddr, p_wen = Signal(cb), Signal(cb), Signal()
            for s, ports in enumerate(acc_sets):
                mine = cur if s else ~cur
                pw = p_wen & mine
                rw = acc_wen & (row_set if s else ~row_set)
                for k, (rp, wp) in enumerate(ports):
                    m.d.comb += [rp.addr.eq(Mux(p_on & mine, Cat(p_addr, acc_lane_off[k]),
                                                Cat(acc_addr, Const(0, 1)))),
                                 wp.addr.eq(Mux(pw, p_waddr, acc_waddr)),
                                 wp.data.eq(Mux(pw, 0, acc_wdata[k])), wp.en.eq(pw | rw)]
            acc_rows = [Mux(row_set, acc_sets[1][k][0].data, acc_sets[0][k][0].data)
                        for k in range(P)]
            acc_pass = Mux(cur, _or_lanes([rp.data for rp, wp in acc_sets[1]]),
                           _or_lanes([rp.data for rp, wp in acc_sets[0]]))
        else:
            p_addr, p_waddr, p_wen = acc_addr, acc_waddr, acc_wen
            for k, (rp, wp) in enumerate(acc):
                m.d.comb += rp.addr.eq(Cat(acc_addr, acc_lane_off[k]))
            for k, (rp, wp) in enumerate(acc):
                m.d.comb += [wp.addr.eq(acc_waddr), wp.data.eq(acc_wdata[k]), wp.en.eq(acc_wen)]
            acc_rows = [rp.data for rp, wp in acc]
            acc_pass = _or_lanes(acc_rows)
        amt = [mem(f"amt{e}", granularity=TRACE_BITS) for e in range(B)]
        if self.register_unit_inputs:
            # (ECP5) the amounts are written a clock late: their write data and
            # enables come through the state and a multiplexer per memory, and the
            # block RAMs are far away; every reader comes two clocks or more
            # after the last write (rows after D_DRAIN, columns after DRAIN)
            amt = [(rp, _RegisteredWrite(m, wp, f"amt{e}")) for e, (rp, wp) in enumerate(amt)]
        slist = mem("slist")
        if M:
            itrace = mem("itrace", granularity=8)

        # synapse banks (ports wired after the synapse pipeline below)
        # whole-word writes (a bus write of one synapse reads the word first):
        # one write enable per bank, which maps to the SPRAM's WREN alone
        s_wen = [Signal(name=f"s_wen{b}") for b in range(B)]
        s_wdata = [Signal(geo.width, name=f"s_wdata{b}") for b in range(B)]
        s_rdata = [syn[b][0].data for b in range(B)]

        # ---- registers ----------------------------------------------------------------------
        ri = self.reg_init
        wlo, whi = cfg.weight_range
        regs = {}
        for f in STDP_FIELDS + GLOBAL_FIELDS:
            shape = signed(WB) if f.name in ("w_min", "w_max") else unsigned(f.bits)
            regs[f.name] = Signal(shape, name=f"r_{f.name}", init=ri[f.name])
        learn = regs["enabled"]
        sp = Signal(StepParams)
        m.d.comb += [getattr(sp, k).eq(regs[k]) for k in
                     ("w_shift", "a_plus", "a_minus", "alpha_pre", "alpha_post", "jump_pre",
                      "jump_post")]
        # The counters live in a RAM and share one adder: after a step (and for
        # a bus read) state CNT reads each in turn and writes it back a clock
        # later, plus the step's amount (or zero to clear them).
        # LAST_STEP_CYCLES is step_cyc itself, which holds its value until the
        # next step starts.
        cnt_rd, cnt_wr = mem("counters")
        cph = Signal(range(len(_CHAIN) + 1))   # counter whose read is issued
        cph1 = Signal(range(len(_CHAIN)))      # counter on the read port
        cv1 = Signal()                         # cph1 is valid
        cnt_upd = Signal()                # add the step's amounts (else: a bus read)
        cnt_zero = Signal()               # clear them (COUNTER write, CONTROL)

        def enter_cnt(upd, zero):
            m.d.sync += [cph.eq(0), cv1.eq(0), cnt_upd.eq(upd), cnt_zero.eq(zero)]
        n_r = Signal(range(N + 1), init=ri.get("pending_spikes", 0))   # rows of s(t-1)
        n_s = Signal(range(N + 1))        # spikes of this step
        n_k = Signal(range(M + 1))        # distinct input events collected
        dirty = Signal(init=1)            # the bus wrote since the last neuron pass
        step_cyc = Signal(DATA_BITS)

        # ---- pipelines --------------------------------------------------------------------
        # dual-port banks mean ECP5 and its faster clock: register the block RAM
        # outputs before the units' arithmetic (one more clock per pass)
        m.submodules.nu = nu = NeuronUnit(AW, _bits(N), input_register=self.register_unit_inputs)
        m.d.comb += nu.params.eq(sp)
        if M:
            m.submodules.tu = tu = TraceUnit(_bits(max(N, M)), input_register=self.register_unit_inputs)
            m.d.comb += tu.params.eq(sp)
        m.submodules.div = div = ConstDivider(IB, N, held=True)   # (the bus holds the address)

        # ---- bus request latch --------------------------------------------------------------
        # The request is accepted (bus.ready) only when its access is done
        # (state B_ACK), so its payload stays on the bus meanwhile and is used
        # from there: a latch of it would cost a logic cell per bit on the iCE40.
        b_addr = self.bus.payload.addr
        b_write = self.bus.payload.write
        b_wdata = Signal(DATA_BITS)       # the write data (0 while CLEAR zeroes the memories)
        region = Signal(REGION_BITS)
        index = Signal(IB)
        m.d.comb += [region.eq(b_addr[IB:]), index.eq(b_addr[:IB])]
        m.d.comb += div.dividend.eq(index)
        b_q, b_rem = div.quotient, div.remainder      # (row or field, neuron)
        rdata = Signal(DATA_BITS)
        rd1 = Signal(16)                  # a memory word or register read by the bus

        # synapse coordinates of a bus access
        b_row = Signal(range(geo.rows))
        m.d.comb += b_row.eq(Mux(region == Region.W_IN, geo.n_pad + b_q, b_q))
        b_g = b_rem >> lb
        b_bank = Signal(range(B))
        b_saddr = Signal(range(max(geo.depth, 2)))
        b_lane = Signal(range(L))
        m.d.comb += [b_bank.eq((b_row + b_g)[:bb] if bb else 0),
                     b_saddr.eq(b_row * C + (b_g >> bb)),
                     b_lane.eq(b_rem[:lb] if lb else 0)]
        def below(x, n):
            # x < n for a constant n: a zero test of the high bits and a compare
            # of the few low ones (no carry chain over the whole index)
            w = max(1, (n - 1).bit_length())
            if n >= 1 << len(x):
                return Const(1)
            return ~x[w:].any() & (x[:w] < n if n < 1 << w else 1)

        mapped = Signal()                 # the address exists (decoded from b_addr)
        mapped_r = Signal()               # the same, registered in B_DIV
        with m.Switch(region):
            with m.Case(Region.W_REC):
                m.d.comb += mapped.eq(below(index, N * N))
            with m.Case(Region.W_IN):
                m.d.comb += mapped.eq(below(index, M * N))
            with m.Case(Region.PARAM):
                m.d.comb += mapped.eq(below(index, len(NEURON_PARAMS) * N))
            with m.Case(Region.STATE):
                m.d.comb += mapped.eq(below(index, len(NEURON_STATE) * N))
            with m.Case(Region.INPUT_TRACE):
                m.d.comb += mapped.eq(below(index, M))
            with m.Case(Region.STDP):
                m.d.comb += mapped.eq(below(index, len(STDP_FIELDS)))
            with m.Case(Region.GLOBAL):
                m.d.comb += mapped.eq(below(index, len(GLOBAL_FIELDS)))
            with m.Case(Region.COUNTER):
                m.d.comb += mapped.eq(below(index, len(Counter)))
            with m.Case(Region.CONTROL):
                m.d.comb += mapped.eq(index == 0)

        # ---- step iteration registers ---------------------------------------------------------
        li = Signal(range(N + M + 2))          # list index
        # li != rows_end (see the row phase) as a register: li changes in START
        # and next_row only, rows_end not during a step
        more_rows = Signal()
        rot = Signal(range(B))                 # bank rotation of the row/column in flight
        base = Signal(range(geo.depth + geo.banks * C + 1))
        c = Signal(range(max(C, geo.row_groups) + 1))   # words issued in this row/column
        col_g = Signal(range(geo.groups))         # group of the column in flight
        col_mask = Signal(L)                      # its spiking posts
        # column offset of each bank (zero outside the potentiation phase)
        col_off = [Signal(range(B * C), name=f"col_off{b}") for b in range(B)]
        t = Signal(range(T + 1))               # neuron pass / clear counter
        nv1 = Signal()                         # neuron memory data valid
        kv1 = Signal()                         # axon memory data valid
        tag1 = Signal(range(T + 1))
        drain = Signal(range(16))              # pipeline drain counter (unit latency + 1)
        dv1 = Signal()                         # DPASS data valid
        ev_pend = Signal()                     # an input event waits for its flag check
        ev_chk = Signal()                      # ... and its registered flag (flag_r)
        flag_r = Signal()
        last_app = Signal()                    # the previous clock appended last_k
        last_k = Signal(range(max(M, 1)))      # (both without the registered check only)
        if OV:
            # next step's recurrent rows during the pass (overlap_rows): the
            # spike list entry ov_li is on the list port when ov_avail
            ov_on = Signal()                   # this step's pass takes early rows
            ov_li = Signal(range(N + 1))       # spike list entry of the next early row
            ov_run = Signal()                  # an early row is being issued
            ov_avail = Signal()                # entry ov_li < n_s is on the list read port
            ov_touched = Signal()              # early rows went into set ~cur ...
            ov_done = Signal()                 # ... and all of them (the step's spikes)

        # ---- synapse pipeline (shared by ROWS and POT) -----------------------------------------
        # cycle x: issue a read of one word per bank (and of d, or of q) and of
        # the accumulators; x+1: register the raw words and the accumulators'
        # (bank output stage, see register_bank_outputs); x+2: update the words
        # and add the old weights into the accumulators; x+3: write the words
        # back if any changed.  Every decision comes from registers, so the
        # memory outputs only drive registers and the update logic sits between
        # two registers.  Without the bank output stage (banks whose output
        # already is a fabric register) each step after x comes a clock
        # earlier, and the accumulator RAMs' output is the update's input.
        # With one port per bank a cycle either writes (the word read at x-3) or
        # reads, which gives R R R W W W when every word changes and one read per
        # clock when none does.
        col_mode = Signal()                         # potentiation (column) phase
        iss = Signal()                              # issue a read this cycle
        iss_addr = Signal(range(geo.depth + geo.banks * C + 1))
        iss_c = Signal(range(max(C, 2)))
        R = int(self.register_bank_outputs)
        RI = self.register_unit_inputs
        U = R + K                                   # stage index of the update
        vs = [Signal(name=f"v{k}") for k in range(U + 2)]
        rots = [Signal(range(B), name=f"rot{k}") for k in range(U + 1)]
        addrs = [Signal.like(iss_addr, name=f"addr{k}") for k in range(U + 2)]
        cs = [Signal.like(iss_c, name=f"c{k}") for k in range(U + 1)]
        words_w = [Signal(geo.width, name=f"words_w{b}") for b in range(B)]   # write stage
        drained = Signal()
        m.d.comb += drained.eq(~Cat(*vs).any())
        # (see R_RUN; None: rows need no gap.  Kept out of the netlist then: a
        # netlist that differs only in its order places and routes differently,
        # and the iCE40 build has no margin for that)
        row_gap = ~Cat(*vs[:U]).any() if C <= U else None

        m.d.sync += [vs[0].eq(iss)] + [vs[k].eq(vs[k - 1]) for k in range(1, len(vs))]
        with m.If(iss):
            m.d.sync += [rots[0].eq(rot), addrs[0].eq(iss_addr), cs[0].eq(iss_c)]
        for k in range(1, len(vs)):
            with m.If(vs[k - 1]):
                m.d.sync += addrs[k].eq(addrs[k - 1])
                if k < len(rots):
                    m.d.sync += [rots[k].eq(rots[k - 1]), cs[k].eq(cs[k - 1])]
        # The update works in bank order, so that the words go back to their
        # banks from a register.  The amounts come in the order of the access
        # (position e: posts P*c+L*e ... for a row, source row B*kk+e for a
        # column; position e is in bank (rot + e) mod B): rows take d of post
        # L*e + l, columns q of row e; they are rotated into bank order.
        def stage_regs(values, stages, name, like=None):
            # values through a register at each of the pipeline stages (loaded
            # while the stage is valid): register k + 1 is `{name}{k + 1}_{e}`,
            # made like `like[e]` (default: the values, which are signals)
            like = values if like is None else like
            for k in stages:
                regs = [Signal.like(t, name=f"{name}{k + 1}_{e}") for e, t in enumerate(like)]
                with m.If(vs[k]):
                    m.d.sync += [r.eq(v) for r, v in zip(regs, values)]
                values = regs
            return values

        # (two stages before the update) the amount memories' words go straight
        # into a register, and are placed and rotated after it
        amt_regs = int(U >= 2)            # registers the amounts pass before the rotation
        amt_words = stage_regs([amt[e][0].data for e in range(B)], range(amt_regs), "amt_raw")
        amt_pos = []
        for e in range(B):
            lanes = []
            for l in range(L):
                d_mem, d_byte = _amt_d_place(e * L + l, B)
                d_val = amt_words[d_mem].word_select(d_byte, TRACE_BITS)
                lanes.append(Mux(col_mode, amt_words[e][:TRACE_BITS], d_val))
            amt_pos.append(Cat(*lanes))
        amt_bank = _rotate(m, amt_pos, rots[amt_regs], -1, "amt_bank")
        # the accumulators are read with the banks (cycle x); with the bank
        # output stage their words are registered with the banks' (acc_u), so
        # that the accumulator loop (RAM -> adder -> RAM) has a register in it
        with m.If(iss):
            m.d.comb += acc_addr.eq(iss_c)
        # (with banks that register their data, K = 1, the bank words come a
        # clock later and the amounts and accumulator words wait for them in
        # a second register)
        if R:
            raw = [Signal(geo.width, name=f"raw1_{b}") for b in range(B)]
        else:
            raw = s_rdata

        def load_raw():
            # the banks' read data into the bank output stage
            if R:
                m.d.sync += [raw[b].eq(s_rdata[b]) for b in range(B)]

        with m.If(vs[K]):
            load_raw()
        amt_u = stage_regs(amt_bank, range(amt_regs, U), "amt")
        if RI:
            # (ECP5) the rows write the accumulators a clock late, from
            # registers (acc_wq*): the adder's sum would otherwise run across
            # the die into the LUT RAMs' write data.  A word read in the clock
            # its write waits (the next row's, C clocks after this row's read)
            # takes the waiting sum instead: the comparison is made as the
            # read is issued and rides with it to the data's first register.
            # (With overlap_rows the rows of the two accumulator sets are a
            # drained pipeline apart, so a waiting write is in the set of the
            # rows in flight.)
            acc_wq = Signal(name="acc_wq")
            acc_wq_addr = Signal(cb, name="acc_wq_addr")
            acc_wq_data = [Signal(signed(AW), name=f"acc_wq_data{k}") for k in range(P)]
            fwd = Signal(name="acc_fwd")
            fwd_data = [Signal(signed(AW), name=f"acc_fwd_data{k}") for k in range(P)]
            hit = acc_wq & (acc_wq_addr == acc_addr)
            m.d.sync += [fwd.eq(iss & hit)] + [f.eq(d) for f, d in zip(fwd_data, acc_wq_data)]
            acc_rows = [Mux(fwd, f, d) for f, d in zip(fwd_data, acc_rows)]
        # (like the accumulators' read data: no reset, no initial value)
        acc_u = stage_regs(acc_rows, range(U), "acc", like=[rp.data for rp, wp in acc[:P]])

        # update stage
        if RI:
            # (ECP5) the saturation bound from a register: it follows col_mode a
            # clock late, and a word reaches the update a clock or more after
            # the phase that set col_mode issued it
            bound = Signal(signed(WB), name="su_bound")
            m.d.sync += bound.eq(Mux(col_mode, regs["w_max"], ~regs["w_min"]))
        else:
            bound = None
        changed = []
        new_words = []
        for b in range(B):
            lanes_new = []
            for l in range(L):
                enable = Mux(col_mode, col_mask[l], learn)
                nw, ch = synapse_update(m, cfg, raw[b][l * SB:(l + 1) * SB],
                                        amt_u[b].word_select(l, TRACE_BITS), enable,
                                        col_mode, regs["w_min"], regs["w_max"], name=f"su{b}_{l}",
                                        bound=bound)
                lanes_new.append(nw)
                changed.append(ch)
            new_words.append(Cat(*lanes_new))
        # (ECP5, dual-port) each bank writes its word back if the word changed:
        # no 16-lane OR across the die; the single-port banks share one
        # schedule (a clock writes all banks or reads them)
        per_bank = RI and self.dual_port
        changed_b = [Signal(name=f"changed_w{b}") for b in range(B)] if per_bank else None
        with m.If(vs[U]):
            m.d.sync += [words_w[b].eq(new_words[b]) for b in range(B)]
            if per_bank:
                m.d.sync += [changed_b[b].eq(Cat(*changed[b * L:(b + 1) * L]).any())
                             for b in range(B)]
            else:
                changed_w = Signal()
                m.d.sync += changed_w.eq(Cat(*changed).any())

        # rows: add the old weights, rotated into post order (posts P*c ...
        # P*c+P-1), into the accumulators
        bank_w = [Cat(*[raw[b][l * SB:l * SB + WB] for l in range(L)]) for b in range(B)]
        if RI and U >= 1 and B > 1:
            # (ECP5) each post position's bank index in a register of its own,
            # loaded with rots[U]: the rotation is one multiplexer level
            post_sel = [Signal(range(B), name=f"post_sel{e}") for e in range(B)]
            with m.If(vs[U - 1]):
                m.d.sync += [post_sel[e].eq((rots[U - 1] + e)[:bb]) for e in range(B)]
            post_ws = _select(m, bank_w, post_sel, "post_w")
        else:
            post_ws = _rotate(m, bank_w, rots[U], +1, "post_w")
        post_w = [post_ws[e].word_select(l, WB).as_signed() for e in range(B) for l in range(L)]
        sums = [acc_u[k] + post_w[k] for k in range(P)]
        if RI:
            m.d.sync += acc_wq.eq(vs[U] & ~col_mode)
            with m.If(vs[U]):
                m.d.sync += [acc_wq_addr.eq(cs[U])] + [q.eq(v) for q, v in zip(acc_wq_data, sums)]
            with m.If(acc_wq):
                m.d.comb += [acc_waddr.eq(acc_wq_addr), acc_wen.eq(1)]
                m.d.comb += [w.eq(q) for w, q in zip(acc_wdata, acc_wq_data)]
        else:
            with m.If(vs[U] & ~col_mode):
                m.d.comb += [acc_waddr.eq(cs[U]), acc_wen.eq(1)]
                m.d.comb += [acc_wdata[k].eq(sums[k]) for k in range(P)]

        # write stage (and bus writes): the banks' write data, write enables and
        # addresses come from registers through one LUT level
        if per_bank:
            wrs = [vs[U + 1] & changed_b[b] for b in range(B)]
        else:
            wr = Signal()
            m.d.comb += wr.eq(vs[U + 1] & changed_w)
            wrs = [wr] * B
        bus_wen = Signal(B)               # bus write of bus_word (state B_WRITE)
        bus_word = Signal(geo.width)
        for b in range(B):
            m.d.comb += [s_wen[b].eq(wrs[b] | bus_wen[b]),
                         s_wdata[b].eq(Mux(wrs[b], words_w[b], bus_word))]
        can_issue = Const(1) if self.dual_port else ~wr

        # bank addresses: the word of the access plus the bank's column offset
        # (zero outside the potentiation phase).  The word read is always the
        # register base (the row's next word, the column's next row group, or
        # the bus word).  When C is a power of two a column's base is a multiple
        # of B*C > col_off, so the sum is an OR: one LUT level between the
        # registers and the RAM (the double-pumped banks sample the read address
        # half a core period after the core edge).  Single port: one address,
        # read whenever not writing.
        m.d.comb += iss_addr.eq(base)

        def bank_addr(word, b):
            return word | col_off[b] if C & (C - 1) == 0 else word + col_off[b]

        for b, (rp, wp) in enumerate(syn):
            m.d.comb += [wp.en.eq(s_wen[b]), wp.data.eq(s_wdata[b])]
            if self.dual_port:
                # (the bus loads the write stage's address with its word)
                m.d.comb += [rp.addr.eq(bank_addr(iss_addr, b)), rp.en.eq(1),
                             wp.addr.eq(bank_addr(addrs[U + 1], b))]
            else:
                a_sel = Signal.like(iss_addr, name=f"a_sel{b}")
                a_bank = bank_addr(a_sel, b)
                m.d.comb += [a_sel.eq(Mux(wr, addrs[U + 1], iss_addr)), wp.addr.eq(a_bank),
                             rp.addr.eq(a_bank), rp.en.eq(s_wen[b] == 0)]

        # ---- default port controls ----------------------------------------------------------------
        for rp, wp in list(prm.values()) + [st_v, st_i, reftr, traces, slist] + amt + acc:
            m.d.comb += rp.en.eq(1)
        if M:
            m.d.comb += itrace[0].en.eq(1)

        # amount memory writes: d of post j, q of neuron j and q of axon j+2
        # (the trace unit is two clocks ahead of the neuron unit) go to three
        # different memories in the same clock (B >= 4)
        QD = geo.row_groups
        if M and (nu.latency - tu.latency) % B in (0, 1):
            raise ValueError("amount memories: neuron and trace unit latencies collide")
        def write_d(j, d):
            for e in range(B):
                with m.If((j + 1)[:bb] == e):
                    m.d.comb += [amt[e][1].addr.eq(QD + (j >> pb)), amt[e][1].data.eq(d.replicate(L)),
                                 amt[e][1].en.eq(1 << (j[bb:pb] if L > 1 else 0))]

        def write_q(row, q):
            for e in range(B):
                with m.If(row[:bb] == e):
                    m.d.comb += [amt[e][1].addr.eq(row >> bb), amt[e][1].data.eq(q), amt[e][1].en.eq(1)]

        # Addresses and write data of the neuron and axon memories, shared by
        # every state so that the states only drive enables: the bus, CLEAR and
        # the input events address them with t and write b_wdata (0 for CLEAR);
        # the pass writes its results where the units say.
        o, nu_wb = nu.out.payload, nu.out.valid
        for rp, wp in list(prm.values()) + [st_v, st_i, reftr, traces]:
            m.d.comb += rp.addr.eq(t)
        # operands that the neuron unit reads late, when a stage needs them: in
        # the pass their memories read at the unit's tags (other neurons than
        # the write-back's)
        nu_feed = Signal()                # set in PASS and DRAIN
        late = nu.late
        for (rp, wp), tag in ((prm["alpha_v"], late.alpha_v_tag), (traces, late.trace_tag),
                              (reftr, late.ref_tag), (prm["v_reset"], late.v_reset_tag)):
            with m.If(nu_feed):
                m.d.comb += rp.addr.eq(tag)
        m.d.comb += [late.alpha_v.eq(prm["alpha_v"][0].data), late.v_reset.eq(prm["v_reset"][0].data),
                     late.pre.eq(traces[0].data[:8]), late.post.eq(traces[0].data[8:]),
                     late.ref.eq(reftr[0].data[:8]), late.t_ref.eq(reftr[0].data[8:])]
        # the unit's data inputs are not gated by the state (only valid is, in
        # PASS): a gate would cost a LUT per bit
        a = nu.inp.payload
        m.d.comb += [a.tag.eq(tag1), a.acc.eq(acc_pass),
                     a.v.eq(st_v[0].data), a.i.eq(st_i[0].data)]
        m.d.comb += [getattr(a, name).eq(prm[name][0].data) for name in ("threshold", "v_rest", "alpha_i")]
        for rp, wp in prm.values():
            m.d.comb += [wp.addr.eq(t), wp.data.eq(b_wdata[:16])]
        for (rp, wp), value in ((st_v, o.v), (st_i, o.i)):
            m.d.comb += [wp.addr.eq(Mux(nu_wb, o.tag, t)), wp.data.eq(Mux(nu_wb, value, b_wdata[:16]))]
        for (rp, wp), value in ((reftr, o.ref), (traces, Cat(o.pre, o.post))):
            m.d.comb += [wp.addr.eq(Mux(nu_wb, o.tag, t)),
                         wp.data.eq(Mux(nu_wb, value, b_wdata[:8].replicate(2)))]
        m.d.comb += [slist[1].addr.eq(Mux(nu_wb, n_s, N + n_k)), slist[1].data.eq(Mux(nu_wb, o.tag, t))]
        if M:
            to = tu.out.payload
            # the pass writes the new trace and clears the axon's event flag; an
            # event sets the flag (high byte), the bus writes the trace (low byte)
            m.d.comb += [itrace[0].addr.eq(t), itrace[1].addr.eq(Mux(tu.out.valid, to.tag, t)),
                         itrace[1].data.eq(Mux(tu.out.valid, to.x, Cat(b_wdata[:8], Const(1, 8))))]

        # neuron pass write-back (PASS state and pipeline drain)
        def pass_writeback():
            m.d.comb += nu_feed.eq(1)
            with m.If(nu_wb):
                # a refractory neuron keeps v (v_we low)
                m.d.comb += [st_v[1].en.eq(o.v_we), st_i[1].en.eq(1), reftr[1].en.eq(0b01),
                             traces[1].en.eq(0b11)]
                with m.If(o.spike):
                    m.d.comb += slist[1].en.eq(1)
                    m.d.sync += n_s.eq(n_s + 1)
            with m.If(nu.amounts.valid):
                write_q(nu.amounts.payload.tag, nu.amounts.payload.q)   # (d: below)
            if M:
                with m.If(tu.out.valid):
                    m.d.comb += itrace[1].en.eq(0b11)
                    write_q(geo.n_pad + to.tag, to.q)

        # d comes from the neuron unit in the pass and from the trace unit (or,
        # without inputs, a multiplier) in DPASS: one source for write_d, so that
        # the amount memories' write multiplexers see one d address and value
        d_from_dpass = Signal()           # set in DPASS and D_DRAIN
        dp_valid, dp_tag, dp_val = Signal(), Signal(range(T + 1)), Signal(TRACE_BITS)
        d_valid, d_tag, d_val = Signal(), Signal(range(T + 1)), Signal(TRACE_BITS)
        am = nu.amounts
        m.d.comb += [d_valid.eq(Mux(d_from_dpass, dp_valid, am.valid)),
                     d_tag.eq(Mux(d_from_dpass, dp_tag, am.payload.tag)),
                     d_val.eq(Mux(d_from_dpass, dp_val, am.payload.d))]
        with m.If(d_valid):
            write_d(d_tag, d_val)
        if M:
            # DPASS borrows the input trace unit and its multiplier: with alpha =
            # 1.0 and no jump it passes y through and returns stdp_delta(A-, y)
            with m.If(d_from_dpass):
                m.d.comb += [tu.params.alpha_pre.eq(DECAY_ONE), tu.params.jump_pre.eq(0),
                             tu.params.a_plus.eq(regs["a_minus"]),
                             dp_valid.eq(tu.out.valid), dp_tag.eq(tu.out.payload.tag),
                             dp_val.eq(tu.out.payload.q)]

        # ---- the controller -------------------------------------------------------------------------
        step_states = ("START", "DPASS", "D_DRAIN", "R_NEXT", "R_SETUP", "R_RUN", "PASS", "DRAIN",
                       "C_NEXT", "C_MERGE", "C_SETUP", "C_RUN", "O_FETCH", "O_SEND", "O_END")
        if RI:
            step_states += ("C_LOAD", "R_LOAD")
        with m.FSM(name=CONTROLLER_STATE.removesuffix("_state")) as fsm:
            # -- idle: events and bus requests --------------------------------------------------
            with m.State("IDLE"):
                ev = self.events.payload
                if M and RI:
                    # the event's flag is registered (flag_r) and checked the clock
                    # after; no event is taken meanwhile, so the next one's flag is
                    # read after this one's is written (one event per three clocks)
                    m.d.comb += self.events.ready.eq(~ev_pend & ~ev_chk)
                    m.d.sync += [ev_pend.eq(0), ev_chk.eq(ev_pend), flag_r.eq(itrace[0].data[8])]
                    check, dup = ev_chk, flag_r
                elif M:
                    # check the event accepted last cycle against the step's flags
                    # (one event per clock: the previous append is forwarded)
                    m.d.comb += self.events.ready.eq(1)
                    m.d.sync += [ev_pend.eq(0), last_app.eq(0)]
                    check, dup = ev_pend, itrace[0].data[8] | (last_app & (last_k == t))
                else:
                    m.d.comb += self.events.ready.eq(1)
                if M:
                    # (t holds the checked event's axon)
                    with m.If(check & ~dup):
                        m.d.comb += [itrace[1].en.eq(0b10), slist[1].en.eq(1)]
                        m.d.sync += n_k.eq(n_k + 1)
                        if not RI:          # (the append forwarded to the next check)
                            m.d.sync += [last_app.eq(1), last_k.eq(t)]
                # (events.ready is 1 here without the registered check)
                with m.If(self.events.valid & (self.events.ready if M and RI else 1)):
                    with m.If(ev.end):
                        m.d.sync += step_cyc.eq(1)
                        m.next = "START"
                    if M:
                        with m.Elif(ev.index < M):
                            m.d.comb += [itrace[0].addr.eq(ev.index)]
                            m.d.sync += [t.eq(ev.index), ev_pend.eq(1)]
                # (with the registered check, not while an event waits for it)
                with m.Elif(self.bus.valid & (~ev_pend if M and RI else 1)):
                    m.d.comb += div.start.eq(1)
                    m.next = "B_DIV"

            # -- bus access ------------------------------------------------------------------------
            with m.State("B_DIV"):
                m.d.sync += mapped_r.eq(mapped)
                # a register read goes through rd1 (B_READ2 returns it); the
                # value is picked by the low index bits only: an unmapped address
                # answers 0 anyway, and the other regions do not use rd1 or load it
                # in B_READ
                def reg_values(fields):
                    vals = [regs[f.name].as_unsigned() for f in fields]
                    return Array(vals + [Const(0)] * ((1 << _bits(len(vals))) - len(vals)))
                m.d.sync += rd1.eq(Mux(region == Region.GLOBAL,
                                       reg_values(GLOBAL_FIELDS)[index[:_bits(len(GLOBAL_FIELDS))]],
                                       reg_values(STDP_FIELDS)[index[:_bits(len(STDP_FIELDS))]]))
                with m.If(div.done):
                    # the neuron or axon of the access addresses the memories
                    if M:
                        m.d.sync += t.eq(Mux(region == Region.INPUT_TRACE, index, b_rem))
                    else:
                        m.d.sync += t.eq(b_rem)
                    m.d.sync += [base.eq(b_saddr), addrs[U + 1].eq(b_saddr)]
                    m.next = "B_ACC"
            with m.State("B_ACC"):
                m.d.sync += rdata.eq(0)
                m.next = "B_ACK"
                with m.If(mapped_r):
                    with m.If(b_write):
                        m.d.sync += dirty.eq(1)
                    # memories read now (addresses loaded in B_DIV), data next cycle
                    with m.Switch(region):
                        with m.Case(Region.W_REC, Region.W_IN):
                            # a write reads the word, then writes it with the lane replaced
                            m.next = "B_READ"
                        with m.Case(Region.PARAM):
                            with m.If(b_write):
                                for name in _W16:
                                    with m.If(b_q == _PARAM[name]):
                                        m.d.comb += prm[name][1].en.eq(1)
                                with m.If(b_q == _PARAM["t_ref"]):
                                    m.d.comb += reftr[1].en.eq(0b10)
                            with m.Else():
                                m.next = "B_READ"
                        with m.Case(Region.STATE):
                            with m.If(b_write):
                                with m.Switch(b_q):
                                    with m.Case(_STATE["v"]):
                                        m.d.comb += st_v[1].en.eq(1)
                                    with m.Case(_STATE["i"]):
                                        m.d.comb += st_i[1].en.eq(1)
                                    with m.Case(_STATE["ref"]):
                                        m.d.comb += reftr[1].en.eq(0b01)
                                    with m.Case(_STATE["pre_trace"]):
                                        m.d.comb += traces[1].en.eq(0b01)
                                    with m.Case(_STATE["post_trace"]):
                                        m.d.comb += traces[1].en.eq(0b10)
                            with m.Else():
                                m.next = "B_READ"
                        with m.Case(Region.INPUT_TRACE):
                            if M:
                                with m.If(b_write):
                                    m.d.comb += itrace[1].en.eq(0b01)
                                with m.Else():
                                    m.next = "B_READ"
                        with m.Case(Region.STDP, Region.GLOBAL):
                            # (a read was taken into rd1 in B_DIV)
                            with m.If(b_write):
                                for rg, fields in ((Region.STDP, STDP_FIELDS),
                                                   (Region.GLOBAL, GLOBAL_FIELDS)):
                                    for k, f in enumerate(fields):
                                        with m.If((region == rg) & (index == k)):
                                            m.d.sync += regs[f.name].eq(b_wdata[:len(regs[f.name])])
                            with m.Else():
                                m.next = "B_READ"
                        with m.Case(Region.COUNTER):
                            with m.If(b_write):
                                enter_cnt(0, 1)
                                m.d.sync += step_cyc.eq(0)
                                m.next = "CNT"
                            with m.Elif(index == Counter.LAST_STEP_CYCLES):
                                m.d.sync += rdata.eq(step_cyc)
                            with m.Else():
                                enter_cnt(0, 0)
                                m.next = "CNT"
                        with m.Case(Region.CONTROL):
                            with m.If(b_write):
                                m.d.sync += t.eq(0)
                                m.next = "CLEAR"
            # the words the bus reads from the neuron and axon memories; with the
            # units' input registers (ECP5) each goes into a register of its own
            # first and is picked a clock later (B_READK), so that the
            # multiplexer does not follow a block RAM's late output
            bus_src = {"v": st_v[0].data, "i": st_i[0].data, "ref_tref": reftr[0].data,
                       "traces": traces[0].data, **{n: prm[n][0].data for n in _W16}}
            if M:
                bus_src["itrace"] = itrace[0].data
            if RI:
                copies = {}
                for name, data in bus_src.items():
                    copies[name] = Signal.like(data, name=f"bus_{name}")
                    m.d.sync += copies[name].eq(data)
                bus_src = copies

            def load_rd1():
                with m.Switch(region):
                    with m.Case(Region.PARAM):
                        with m.Switch(b_q):
                            for name in _W16:
                                with m.Case(_PARAM[name]):
                                    m.d.sync += rd1.eq(bus_src[name])
                            with m.Case(_PARAM["t_ref"]):
                                m.d.sync += rd1.eq(bus_src["ref_tref"][8:])
                    with m.Case(Region.STATE):
                        with m.Switch(b_q):
                            with m.Case(_STATE["v"]):
                                m.d.sync += rd1.eq(bus_src["v"])
                            with m.Case(_STATE["i"]):
                                m.d.sync += rd1.eq(bus_src["i"])
                            with m.Case(_STATE["ref"]):
                                m.d.sync += rd1.eq(bus_src["ref_tref"][:8])
                            with m.Case(_STATE["pre_trace"]):
                                m.d.sync += rd1.eq(bus_src["traces"][:8])
                            with m.Case(_STATE["post_trace"]):
                                m.d.sync += rd1.eq(bus_src["traces"][8:])
                    if M:
                        with m.Case(Region.INPUT_TRACE):
                            m.d.sync += rd1.eq(bus_src["itrace"][:8])

            with m.State("B_READ"):
                # two clocks: the RAM outputs go to registers (the bank words to
                # the bank output stage, if any, the others through one multiplexer to rd1), then to rdata
                # (three with banks or memories whose words are registered first)
                m.next = "B_READK" if K or RI else "B_READ2"
                if not K:
                    load_raw()
                if not RI:
                    load_rd1()
            with m.State("B_READ2"):
                m.next = "B_ACK"
                with m.If((region == Region.W_REC) | (region == Region.W_IN)):
                    word = Signal(geo.width)
                    m.d.comb += word.eq(Array(raw)[b_bank])
                    with m.If(b_write):
                        lanes = [Mux(b_lane == l, b_wdata[:SB], word.word_select(l, SB))
                                 for l in range(L)]
                        m.d.sync += [bus_word.eq(Cat(*lanes)), bus_wen.eq(1 << b_bank)]
                        m.next = "B_WRITE"
                    with m.Else():
                        m.d.sync += rdata.eq(word.word_select(b_lane, SB) if L > 1 else word)
                with m.Else():
                    m.d.sync += rdata.eq(rd1)
            if K or RI:
                with m.State("B_READK"):
                    # banks with registers of their own read in two clocks: their
                    # words are on the ports now, and go to the bank output stage;
                    # the other memories' words are in their registers
                    if K:
                        load_raw()
                    if RI:
                        load_rd1()
                    m.next = "B_READ2"
            with m.State("B_WRITE"):
                # bus_wen writes bus_word at addrs[U + 1], which B_DIV set to the bus word
                m.d.sync += bus_wen.eq(0)
                m.next = "B_ACK"
            with m.State("CLEAR"):
                # CONTROL: zero V, I, ref, traces and pending spikes; clear the counters
                with m.If(t < N):
                    # (b_wdata is 0 in this state)
                    m.d.comb += [st_v[1].en.eq(1), st_i[1].en.eq(1), reftr[1].en.eq(0b01),
                                 traces[1].en.eq(0b11)]
                if M:
                    with m.If(t < M):
                        m.d.comb += itrace[1].en.eq(0b01)
                m.d.sync += t.eq(t + 1)
                with m.If(t == T - 1):
                    m.d.sync += [n_r.eq(0), dirty.eq(1), step_cyc.eq(0)]
                    enter_cnt(0, 1)
                    m.next = "CNT"
            with m.State("B_ACK"):
                # accept the request (its payload was used until now), then answer
                m.d.comb += self.bus.ready.eq(1)
                m.next = "B_RESP"
            with m.State("B_RESP"):
                m.d.comb += [self.bus_resp.valid.eq(1), self.bus_resp.payload.rdata.eq(rdata)]
                with m.If(self.bus_resp.ready):
                    m.next = "IDLE"

            # -- one time step ---------------------------------------------------------------------
            with m.State("START"):
                m.d.sync += [li.eq(Mux(n_r == 0, N, 0)), more_rows.eq((n_r != 0) | (n_k != 0)),
                             t.eq(0), dv1.eq(0)]
                with m.If(learn & dirty):
                    m.next = "DPASS"
                with m.Else():
                    m.next = "R_NEXT"
                if OV:
                    # the early rows stand if the bus wrote nothing since the pass
                    # (dirty: any write, also a reset; learning on needs one too)
                    early = ov_done & ~dirty
                    m.d.sync += ov_done.eq(0)
                    with m.If(early):
                        m.d.sync += [cur.eq(~cur), li.eq(N), more_rows.eq(n_k != 0),
                                     ov_touched.eq(0)]
                    with m.Elif(ov_touched):
                        m.next = "R_CLEAR"

            if OV:
                with m.State("R_CLEAR"):
                    # stale early sums: zero set ~cur (row_set), then read the rows again
                    m.d.comb += [acc_wen.eq(1), acc_waddr.eq(t)]
                    m.d.sync += t.eq(t + 1)
                    with m.If(t == C - 1):
                        m.d.sync += [t.eq(0), ov_touched.eq(0)]
                        with m.If(learn & dirty):
                            m.next = "DPASS"
                        with m.Else():
                            m.next = "R_NEXT"

            with m.State("DPASS"):
                # d_j = stdp_delta(A-, y_j) for the post traces as the bus left them
                with m.If(t < N):
                    m.d.sync += [t.eq(t + 1), tag1.eq(t)]
                m.d.sync += dv1.eq(t < N)
                y = traces[0].data[8:]
                m.d.comb += d_from_dpass.eq(1)
                if M:
                    m.d.comb += [tu.inp.valid.eq(dv1), tu.inp.payload.tag.eq(tag1),
                                 tu.inp.payload.x.eq(y), tu.inp.payload.spike.eq(0)]
                else:
                    m.d.comb += [dp_valid.eq(dv1), dp_tag.eq(tag1),
                                 dp_val.eq(((regs["a_minus"] * y + 128) >> 8)[:TRACE_BITS])]
                with m.If((t == N) & ~dv1):
                    m.d.sync += drain.eq((tu.latency if M else TraceUnit.LATENCY) + 1)
                    m.next = "D_DRAIN"

            with m.State("D_DRAIN"):
                m.d.comb += d_from_dpass.eq(1)
                m.d.sync += drain.eq(drain - 1)
                with m.If(drain == 0):
                    m.d.sync += dirty.eq(0)
                    m.next = "R_NEXT"

            n_rows = Signal(range(N + M + 1))
            m.d.comb += n_rows.eq(n_r + n_k)

            # In the row phase li is the list address: the spike list 0 .. n_r-1,
            # then the event list N .. N+n_k-1 (rows_end).
            rows_end = Signal(range(N + M + 1))
            m.d.comb += rows_end.eq(N + n_k)
            li_next = Signal.like(li)
            after_li = Mux(li + 1 == n_r, N, li + 1)
            if RI:
                # (ECP5) both from registers, which follow li a clock late: a
                # row starts two clocks or more after li last changed
                more_next = Signal()
                m.d.sync += [li_next.eq(after_li), more_next.eq(after_li != rows_end)]
            else:
                m.d.comb += li_next.eq(after_li)
                more_next = li_next != rows_end

            def list_read(u):
                m.d.comb += [slist[0].addr.eq(u), slist[0].en.eq(1)]

            # The rows take their list entry from list_q.  (ECP5) that is a
            # register after the block RAM's output, which is slow: the entry is
            # used two clocks after its read (a row's next entry is read as it
            # starts, C >= 3 clocks before it is used; R_LOAD waits for the
            # first; the early rows wait a clock more, see ov_start)
            if RI:
                list_q = Signal.like(slist[0].data, name="list_q")
                m.d.sync += list_q.eq(slist[0].data)
            else:
                list_q = slist[0].data

            def hold_lists():
                m.d.comb += slist[0].en.eq(0)

            def next_row():
                # start the row whose list entry was read earlier, prefetch the one after
                with m.If(more_rows):
                    row = Signal(range(geo.rows))
                    if M:
                        m.d.comb += row.eq(Mux(li >= N, geo.n_pad + list_q, list_q))
                    else:
                        m.d.comb += row.eq(list_q)
                    m.d.sync += [base.eq(row * C), rot.eq(row[:bb] if bb else 0), c.eq(0),
                                 li.eq(li_next), more_rows.eq(more_next)]
                    list_read(li_next)
                    m.next = "R_RUN"
                with m.Else():
                    m.d.sync += [t.eq(0), nv1.eq(0), kv1.eq(0), n_s.eq(0)]
                    if OV:
                        m.d.sync += [ov_li.eq(0), ov_on.eq(~learn)]
                    m.next = "PASS"

            with m.State("R_NEXT"):
                hold_lists()
                list_read(li)
                m.next = "R_LOAD" if RI else "R_SETUP"

            if RI:
                with m.State("R_LOAD"):
                    hold_lists()
                    m.next = "R_SETUP"

            with m.State("R_SETUP"):
                hold_lists()
                m.d.sync += [col_mode.eq(0)] + [x.eq(0) for x in col_off]
                if OV:
                    m.d.sync += row_set.eq(cur)
                next_row()

            def issue_row_word(more, start, d_amounts=True):
                # word c of the row in flight (and, with d_amounts, the posts'
                # d); the next row starts right after this one's last word if
                # `more`: its word k reads the accumulators C clocks after this
                # row's word k did, and this row's update of them (written
                # 1 + U clocks after that read) has landed by then.  The caller
                # goes on with m.Elif(c == C): the row's end.
                with m.If(can_issue & (c < C)):
                    m.d.comb += [iss.eq(1), iss_c.eq(c)]
                    if d_amounts:
                        m.d.comb += [a[0].addr.eq(geo.row_groups + c) for a in amt]
                    m.d.sync += [c.eq(c + 1), base.eq(base + 1)]
                    if C >= 2 + U:
                        with m.If((c == C - 1) & more):
                            start()

            with m.State("R_RUN"):
                hold_lists()
                issue_row_word(more_rows, next_row)
                with m.Elif(c == C):
                    # shorter rows start C + 1 clocks apart, or, when C <= U, once
                    # the first word has left stages 0 .. U-1 (its accumulator
                    # words are written the clock after: U + 2 clocks after its
                    # read, when the next row's first word reads them); the pass
                    # waits for the pipeline
                    with m.If(drained | (more_rows if row_gap is None else more_rows & row_gap)):
                        next_row()

            with m.State("PASS"):
                # issue reads for neuron/axon t; feed the units with last cycle's data
                with m.If(t < T):
                    m.d.sync += t.eq(t + 1)
                m.d.sync += [nv1.eq(t < N), kv1.eq(t < M), tag1.eq(t)]
                # lane t mod P reads its accumulator, the others read the zero half,
                # so that the lanes can be ORed instead of selected
                m.d.comb += p_addr.eq(t >> pb)
                m.d.comb += [acc_lane_off[k].eq(t[:pb] != k if pb else 0) for k in range(P)]
                if OV:
                    m.d.comb += p_on.eq(1)
                m.d.comb += nu.inp.valid.eq(nv1)
                with m.If(nv1 & ((tag1[:pb] == P - 1 if pb else 1) | (tag1 == N - 1))):
                    # the word's last accumulator is consumed: clear the word (the
                    # next word is being read, so the write never meets the read)
                    m.d.comb += [p_waddr.eq(tag1 >> pb), p_wen.eq(1)]
                if M:
                    ta = tu.inp.payload
                    m.d.comb += [tu.inp.valid.eq(kv1), ta.tag.eq(tag1), ta.x.eq(itrace[0].data[:8]),
                                 ta.spike.eq(itrace[0].data[8])]
                pass_writeback()
                with m.If(t == T):
                    m.d.sync += drain.eq(nu.latency + 1)
                    m.next = "DRAIN"

            with m.State("DRAIN"):
                pass_writeback()
                m.d.sync += drain.eq(drain - 1)
                with m.If(drain == 0):
                    m.d.sync += [dirty.eq(0), li.eq(0)]
                    with m.If(learn & (n_s != 0)):
                        m.next = "C_NEXT"
                    if OV:
                        with m.Elif(ov_on):
                            m.next = "OV_WAIT"
                    with m.Else():
                        m.next = "O_FETCH"

            if OV:
                with m.State("OV_WAIT"):
                    # the early rows of the last spikes
                    with m.If(~ov_run & (ov_li == n_s) & drained):
                        m.d.sync += [ov_on.eq(0), ov_done.eq(1)]
                        m.next = "O_FETCH"

            # potentiation works on groups of L posts: spiking posts that share a
            # group (adjacent in the sorted spike list) are updated in one column pass
            with m.State("C_NEXT"):
                m.d.comb += slist[0].addr.eq(li)
                m.d.sync += col_mask.eq(0)
                with m.If(li < n_s):
                    m.d.sync += li.eq(li + 1)
                    m.next = "C_LOAD" if RI else "C_MERGE"
                with m.Else():
                    m.d.sync += [li.eq(0)] + [x.eq(0) for x in col_off]
                    m.next = "O_FETCH"

            if RI:
                # the list entry is registered before the merge decides on it
                # (block RAM output -> compare -> list index: a long path on ECP5)
                j_r = Signal.like(slist[0].data)
                with m.State("C_LOAD"):
                    m.d.comb += slist[0].addr.eq(li)
                    m.d.sync += j_r.eq(slist[0].data)
                    m.next = "C_MERGE"

            with m.State("C_MERGE"):
                # slist data: entry li-1; merge it if it is the first or in the same group
                j = j_r if RI else slist[0].data
                g = j >> lb
                first = col_mask == 0
                # read entry li whatever the merge decides (a list address that
                # depends on list data would make a long path)
                m.d.comb += slist[0].addr.eq(li)
                with m.If(first | (g == col_g)):
                    m.d.sync += [col_g.eq(g), col_mask.eq(col_mask | (1 << j[:lb] if lb else 1))]
                    with m.If((li < n_s) & (L > 1)):
                        m.d.sync += li.eq(li + 1)
                        if RI:
                            m.next = "C_LOAD"
                    with m.Else():
                        m.next = "C_SETUP"
                with m.Else():
                    # belongs to the next group: read it again after this column
                    m.d.sync += li.eq(li - 1)
                    m.next = "C_SETUP"

            with m.State("C_SETUP"):
                m.d.sync += [rot.eq(col_g[:bb] if bb else 0), base.eq(0), c.eq(0), col_mode.eq(1)]
                for b in range(B):
                    m.d.sync += col_off[b].eq(((b - col_g)[:bb] if bb else 0) * C + (col_g >> bb))
                m.next = "C_RUN"

            with m.State("C_RUN"):
                with m.If(can_issue & (c < geo.row_groups)):
                    m.d.comb += [iss.eq(1)] + [a[0].addr.eq(c) for a in amt]
                    m.d.sync += [base.eq(base + B * C), c.eq(c + 1)]
                with m.Elif((c == geo.row_groups) & drained):
                    m.next = "C_NEXT"

            with m.State("O_FETCH"):
                m.d.comb += slist[0].addr.eq(li)
                with m.If(li < n_s):
                    m.d.sync += li.eq(li + 1)
                    m.next = "O_SEND"
                with m.Else():
                    m.next = "O_END"

            with m.State("O_SEND"):
                # one spike per clock: the next entry is read while this one is taken
                m.d.comb += [slist[0].en.eq(0), self.spikes.valid.eq(1),
                             self.spikes.payload.index.eq(slist[0].data)]
                with m.If(self.spikes.ready):
                    with m.If(li < n_s):
                        m.d.comb += [slist[0].addr.eq(li), slist[0].en.eq(1)]
                        m.d.sync += li.eq(li + 1)
                    with m.Else():
                        m.next = "O_END"

            with m.State("O_END"):
                m.d.comb += [self.spikes.valid.eq(1), self.spikes.payload.end.eq(1)]
                with m.If(self.spikes.ready):
                    enter_cnt(1, 0)
                    m.next = "CNT"

            with m.State("CNT"):
                # read counter cph, write counter cph1 (read the clock before) back:
                # plus the step's amount after a step, unchanged for a bus read
                # (which takes it on its way), zero to clear
                inc = Signal(DATA_BITS)
                amounts = {Counter.STEPS: 1, Counter.SPIKES: n_s, Counter.INPUT_SPIKES: n_k,
                           Counter.SYN_EVENTS: n_rows * N, Counter.BUSY_CYCLES: step_cyc}
                m.d.comb += cnt_rd.addr.eq(cph)
                m.d.sync += [cph.eq(cph + 1), cph1.eq(cph), cv1.eq(cph < len(_CHAIN))]
                with m.If(cnt_upd):
                    with m.Switch(cph1):
                        for k, cid in enumerate(_CHAIN):
                            with m.Case(k):
                                m.d.comb += inc.eq(amounts[cid])
                with m.Elif(~cnt_zero):
                    for k, cid in enumerate(_CHAIN):
                        with m.If(cv1 & (cph1 == k) & (index == cid)):
                            m.d.sync += rdata.eq(cnt_rd.data)
                m.d.comb += [cnt_wr.addr.eq(cph1), cnt_wr.en.eq(cv1),
                             cnt_wr.data.eq(Mux(cnt_zero, 0, cnt_rd.data + inc))]
                with m.If(cv1 & (cph1 == len(_CHAIN) - 1)):
                    with m.If(cnt_upd):
                        m.d.sync += [n_r.eq(n_s), n_k.eq(0)]
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "B_ACK"

        if OV:
            # the early rows: as the row phase, with the spike list growing
            # under them (an entry is used once ov_avail says it was written)
            # (with list_q a register: ov_ready is ov_avail a clock later, with
            # list_q, and both are cleared by a start, as they would be stale)
            if RI:
                ov_ready = Signal()
                m.d.sync += ov_ready.eq(ov_avail)
            else:
                ov_ready = ov_avail

            def ov_start():
                j = list_q
                m.d.sync += [base.eq(j * C), rot.eq(j[:bb] if bb else 0), c.eq(0),
                             ov_li.eq(ov_li + 1), ov_run.eq(1), ov_touched.eq(1),
                             row_set.eq(~cur)]
                if RI:
                    m.d.sync += [ov_avail.eq(0), ov_ready.eq(0)]

            with m.If(ov_on):
                m.d.comb += slist[0].addr.eq(ov_li)
                # (stale the clock after a start: it is next used two clocks after)
                m.d.sync += ov_avail.eq(ov_li < n_s)
                with m.If(ov_run):
                    issue_row_word(ov_ready, ov_start, d_amounts=False)   # (no learning)
                    with m.Elif(c == C):
                        with m.If(ov_ready & (1 if row_gap is None else row_gap)):
                            ov_start()
                        with m.Else():
                            m.d.sync += ov_run.eq(0)
                with m.Elif(ov_ready):
                    ov_start()
            with m.Else():
                m.d.sync += ov_avail.eq(0)
                if RI:
                    m.d.sync += ov_ready.eq(0)
            step_states += ("OV_WAIT", "R_CLEAR")

        m.d.comb += b_wdata.eq(Mux(fsm.ongoing("CLEAR"), 0, self.bus.payload.wdata))
        in_step = Signal()
        m.d.comb += in_step.eq(Cat(*[fsm.ongoing(s) for s in step_states]).any())
        with m.If(in_step):
            m.d.sync += step_cyc.eq(step_cyc + 1)
        return m
