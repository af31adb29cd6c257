"""Command engine of the link: executes judged frames on the core's streams.

The engine reads a good frame from the deframer's buffer, checks its payload
completely before it touches the core (a rejected command changes nothing),
drives the core's ``bus``/``events``/``spikes`` streams (``neurocorex.regmap``)
and answers through the framer.  It is bit-for-bit the Python engine of
:mod:`neurocorex.sim.vboard`; both follow :mod:`neurocorex.protocol`.

Area matters more than speed here: the UART delivers a byte every
``10 * divisor`` clocks, so the engine works on one byte or one word at a
time, with narrow counters, one 32-bit data register and one small memory
(``aux``) that holds the step's spikes, the link counters and the CAPS answer.
"""

import contextlib

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..formats import CoreConfig
from ..protocol import (Op, Kind, Err, LinkCounter, VERDICT_COUNTER, WRITABLE, READABLE,
                        word_bytes, region_size, max_body, index_bytes, bitmap_bytes,
                        BITMAP_TAG, check_config)
from ..regmap import Region, Counter, DATA_BITS, REGION_BITS, index_bits
from .framing import Verdict, TxItem, ring_bits
from .ramports import NO_RW_CHECK
from .layouts import (bus_request_layout, bus_response_layout, event_layout, spike_layout,
                      core_master_ports)

__all__ = ["CommandEngine", "bus_layouts", "index_width", "aux_layout"]


def index_width(size: int) -> int:
    return max(1, (size - 1).bit_length())


def bus_layouts(config: CoreConfig) -> dict:
    """Payload layouts of the core's streams (from :mod:`neurocorex.hdl.layouts`)."""
    return {"bus": bus_request_layout(config), "bus_resp": bus_response_layout(config),
            "events": event_layout(config), "spikes": spike_layout(config)}


def aux_layout(config: CoreConfig, caps: bytes) -> dict:
    """Word offsets in the engine's ``aux`` memory, and its depth and width.

    ``list``: the step's spike indices in arrival order (N words); ``map``: the
    step's spikes as a bitmap (one byte per word); ``counters``: the link
    counters, four little-endian bytes each; ``caps``: the CAPS answer.  Each
    region starts at a multiple of its size rounded up to a power of two, so
    that an address is the region's base bits next to the offset (no adder).
    """
    n = config.neurons
    sizes = {"list": n, "map": bitmap_bytes(n), "counters": 4 * len(LinkCounter),
             "caps": len(caps)}
    lay, pos = {}, 0
    for name in sorted(sizes, key=lambda k: -sizes[k]):
        lay[name] = pos
        pos += 1 << index_width(sizes[name])
    lay["bits"] = {name: index_width(sizes[name]) for name in sizes}
    lay["depth"] = pos
    lay["width"] = max(8, index_width(n))
    return lay


class _Seq:
    """A state machine whose return address is a state number.

    ``goto`` and ``call`` assign the state register where they are written
    (one multiplexer per state bit over all states, which Yosys builds as a
    parallel ``$pmux``); ``return_`` loads it from ``ret``.  The transitions
    written in one state must be mutually exclusive.
    """

    def __init__(self, m):
        self.m = m
        self.ids = {}
        self.defined = set()
        self.state = Signal(6)   # IDLE is state 0; finish() checks that 6 bits suffice
        self.ret = Signal(6)

    def id(self, name):
        if name not in self.ids:
            self.ids[name] = len(self.ids)
        return self.ids[name]

    def goto(self, name):
        self.m.d.sync += self.state.eq(self.id(name))

    def call(self, name, after):
        self.goto(name)
        self.m.d.sync += self.ret.eq(self.id(after))

    def return_(self):
        self.m.d.sync += self.state.eq(self.ret)

    def case(self, name):
        self.defined.add(name)
        self.current = name
        return self.m.Case(self.id(name))

    def finish(self):
        missing = set(self.ids) - self.defined
        assert not missing, f"states used but not defined: {missing}"
        assert len(self.ids) <= 1 << len(self.state), "more states than the state register holds"


class CommandEngine(wiring.Component):
    """Execute commands; see ``docs/spec.md`` §5.

    Parameters
    ----------
    config : CoreConfig
    max_frame : int
        Frame buffer depth (decoded bytes).
    caps : bytes
        The CAPS answer (``protocol.caps_payload``).
    fast : bool
        Built for a fast clock (ECP5): the frame buffer reads in two clocks
        (a :class:`~neurocorex.hdl.framing.Deframer` with ``read_latency=2``,
        which also gives ``rd_next``, the byte after: the engine's read
        pointer moves by at most one a clock, so the byte it fetched a clock
        ago is one of the two and still arrives in the cycle after a fetch;
        only a fetch in the clock after a jump of the pointer waits a clock),
        ``tail`` comes from a register (a clock late: it only moves forward,
        so the deframer keeps a byte a clock longer at most), and ``aux`` is
        written a clock late from registers (no access reads a byte in the
        clock after writing it).

    Attributes
    ----------
    verdict : In(stream of Verdict)
    judged : In(stream of status), dropped : In(1)
        Deframer events, for the link counters.
    rd_addr, rd_data : frame ring read port (one clock, two when ``fast``).
    rd_next_addr, rd_next : Out, In(8)
        With ``fast`` only: a second read port of the ring, for the
        byte after ``rd_addr``.
    tail : Out(ring_bits + 1)
        The oldest ring byte still needed (the deframer may overwrite the
        bytes before it): the current frame's start, or once the command is
        checked and consumes its payload in order, the next byte to read.
    tx : Out(stream of TxItem)
    bus, bus_resp, events, spikes : the core's streams.
    error : Out(1)
        Pulses on every rejected frame (for a LED).
    """

    def __init__(self, config: CoreConfig, *, max_frame: int, caps: bytes, fast: bool = False):
        check_config(config, max_frame)
        self.fast = bool(fast)
        self.config = config
        self.max_frame = max_frame
        self.caps = bytes(caps)
        super().__init__({
            "verdict": In(stream.Signature(Verdict)),
            "judged": In(stream.Signature(3, always_ready=True)),
            "dropped": In(1),
            "rd_addr": Out(ring_bits(max_frame)),
            "rd_data": In(8),
            **({"rd_next_addr": Out(ring_bits(max_frame)), "rd_next": In(8)}
               if fast else {}),
            "tail": Out(ring_bits(max_frame) + 1),
            "tx": Out(stream.Signature(TxItem)),
            **core_master_ports(config),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        N, M = cfg.neurons, cfg.inputs
        ib = index_bits(cfg)
        mf = self.max_frame
        mbody = max_body(mf)
        ibN, ibM = index_bytes(N), index_bytes(M)
        nbN, nbM = bitmap_bytes(N), bitmap_bytes(M)
        wb = cfg.weight_bits
        fsm = _Seq(m)

        # -- aux memory: spike list, spike bitmap, link counters, CAPS ----------------
        al = aux_layout(cfg, self.caps)
        init = [0] * al["depth"]
        init[al["caps"]:al["caps"] + len(self.caps)] = self.caps
        m.submodules.aux = aux = Memory(shape=al["width"], depth=al["depth"], init=init,
                                        attrs=NO_RW_CHECK)
        abits = (al["depth"] - 1).bit_length()

        def at(name, offset):
            """Address ``offset`` of region ``name``: base bits above the offset's bits."""
            ob = al["bits"][name]
            return Cat(Value.cast(offset)[:ob], Const(al[name] >> ob, abits - ob))
        arp, awp = aux.read_port(domain="comb"), aux.write_port()
        e_raddr = Signal(range(al["depth"]))     # the engine's accesses
        e_waddr = Signal(range(al["depth"]))
        e_wdata = Signal(al["width"])
        e_wen = Signal()
        e_mem = Signal()                          # the engine uses aux in this cycle
        # Two registers after the RAM: the first is the RAM's own (Yosys folds
        # it into the block RAM); the second keeps the RAM's slow output away
        # from logic, so a read's data is ``aux_data`` two cycles after its address.
        aux_ram = Signal(al["width"], reset_less=True)
        aux_data = Signal(al["width"], reset_less=True)
        m.d.sync += [aux_ram.eq(arp.data), aux_data.eq(aux_ram)]
        e_rd = Signal()                           # the engine reads aux in this cycle
        rv1, rv2 = Signal(), Signal()             # ... one and two cycles ago (rv2: aux_data valid)
        m.d.sync += [rv1.eq(e_rd), rv2.eq(rv1)]

        # -- link counters in aux: one shared byte incrementer -------------------------
        # An event marks its counter pending; the updater adds one to it (byte by
        # byte while the carry ripples) whenever the engine leaves aux alone.  The
        # engine yields aux at the start of each of its access sequences while a
        # counter is pending, so the updater never waits more than a few cycles
        # and events (at most a few per received byte) are never lost.
        nctr = len(LinkCounter)
        pend = Signal(nctr)
        pend_set = Signal(nctr)
        # the deframer's events are registered first (its verdict logic is deep)
        judged_v, judged_p, dropped = Signal(), Signal.like(self.judged.payload), Signal()
        m.d.sync += [judged_v.eq(self.judged.valid), judged_p.eq(self.judged.payload),
                     dropped.eq(self.dropped)]
        for c in set(VERDICT_COUNTER.values()):
            hit = 0
            for status, cc in VERDICT_COUNTER.items():
                if cc == c:
                    hit = hit | (judged_p == status)
            m.d.comb += pend_set[c].eq(judged_v & hit)
        m.d.comb += pend_set[LinkCounter.DROPPED_REPLIES].eq(dropped)
        u_busy = Signal()
        u_c = Signal(range(nctr))
        u_n = Signal(3)          # 1..3: byte read; 2..5: byte u_n - 2 written
        u_start = Signal()
        pend_clr = Signal(nctr)
        u_raddr = Signal(range(al["depth"]))
        u_rd = Signal()                          # the updater reads (the engine does not)
        u_waddr = Signal(range(al["depth"]))
        u_wdata = Signal(8)
        u_wen = Signal()
        first_pend = Signal(range(nctr))
        for c in reversed(range(nctr)):
            with m.If(pend[c]):
                m.d.comb += first_pend.eq(c)
        m.d.comb += u_start.eq((pend != 0) & ~u_busy & ~e_mem)
        # The updater always rewrites all four bytes (adding the carry), reading
        # byte j in cycle j and writing it back two cycles later: no aux address
        # depends on data read, and the RAM's output only feeds registers.
        u_cy = Signal()
        with m.If(u_start):
            m.d.comb += [u_raddr.eq(at("counters", Cat(Const(0, 2), first_pend))), u_rd.eq(1),
                         pend_clr.eq(1 << first_pend)]
            m.d.sync += [u_busy.eq(1), u_c.eq(first_pend), u_n.eq(1), u_cy.eq(1)]
        with m.If(u_busy):
            m.d.sync += u_n.eq(u_n + 1)
            with m.If(u_n <= 3):
                m.d.comb += [u_raddr.eq(at("counters", Cat(u_n[:2], u_c))), u_rd.eq(1)]
            with m.If(u_n >= 2):
                m.d.comb += [u_waddr.eq(at("counters", Cat((u_n - 2)[:2], u_c))),
                             u_wdata.eq(aux_data[:8] + u_cy), u_wen.eq(1)]
                m.d.sync += u_cy.eq(u_cy & (aux_data[:8] == 0xFF))
            with m.If(u_n == 5):
                m.d.sync += u_busy.eq(0)
        m.d.sync += pend.eq((pend & ~pend_clr) | pend_set)
        aw = [(awp.addr, Mux(u_wen, u_waddr, e_waddr)), (awp.data, Mux(u_wen, u_wdata, e_wdata)),
              (awp.en, u_wen | e_wen)]
        if self.fast:
            # (fast) written a clock late from registers, which sit by the RAM
            regs = [Signal.like(port, name=f"aux_w_{port.name}") for port, _ in aw]
            m.d.sync += [reg.eq(value) for reg, (_, value) in zip(regs, aw)]
            aw = [(port, reg) for reg, (port, _) in zip(regs, aw)]
        m.d.comb += [arp.addr.eq(Mux(u_rd, u_raddr, e_raddr))] + [port.eq(v) for port, v in aw]
        aux_free = ~u_busy & (pend == 0)         # an access sequence may start

        # The engine's aux address and write data are chosen by the state alone
        # (see aux_ports below): a read nobody uses is harmless, and a write
        # needs e_wen, so the access conditions stay out of the address logic.
        e_reads, e_writes = {}, {}

        def aux_read(addr):
            e_reads.setdefault(fsm.current, []).append(addr)
            m.d.comb += [e_mem.eq(1), e_rd.eq(1)]

        def aux_hold():
            """Keep the updater out while a read's data is on its way (rv2)."""
            m.d.comb += e_mem.eq(1)

        def aux_write(addr, value):
            e_writes.setdefault(fsm.current, []).append((addr, value))
            m.d.comb += [e_wen.eq(1), e_mem.eq(1)]

        def by_state(uses, default):
            """Mux over the states that use something other than ``default``."""
            groups = {}
            for name, exprs in uses.items():
                keys = {repr(Value.cast(e)) for e in exprs}
                assert len(keys) == 1, f"state {name} uses aux in more than one way"
                key = keys.pop()
                if key != repr(Value.cast(default)):
                    groups.setdefault(key, [exprs[0], []])[1].append(fsm.id(name))
            out = default
            for expr, ids in groups.values():
                out = Mux(fsm.state.matches(*ids), expr, out)
            return out

        def aux_ports():
            m.d.comb += [e_raddr.eq(by_state(e_reads, k)),
                         e_waddr.eq(by_state({n: [a for a, _ in w] for n, w in e_writes.items()}, k)),
                         e_wdata.eq(by_state({n: [v for _, v in w] for n, w in e_writes.items()},
                                             Const(0, al["width"])))]

        m.d.sync += self.error.eq(judged_v & (judged_p != Err.OK))

        # -- region tables (4-input ROMs) ---------------------------------------------
        regions = {int(r) for r in Region}
        sizes = [region_size(cfg, r) if r in regions else 0 for r in range(16)]
        size_w = max(sizes).bit_length()
        lws = [(word_bytes(cfg, r) if r in regions else 1).bit_length() - 1 for r in range(16)]
        # lanes of a written word (no writable region has 4-byte words today)
        wlanes = max(word_bytes(cfg, r) for r in WRITABLE).bit_length() - 1
        wmask = sum(1 << int(r) for r in WRITABLE)
        rmask = sum(1 << int(r) for r in READABLE)

        # -- registers ---------------------------------------------------------------
        op = Signal(8)
        seq = Signal(8)
        blen = Signal(range(mf + 1))     # body length (op, seq, payload)
        owned = Signal()                 # the current command came from the buffer
        rb = ring_bits(mf)
        fstart = Signal(rb + 1)          # ring pointer of the current (or next good) frame
        streaming = Signal()             # checked: bytes before ptr may be overwritten
        rd_ptr = Signal(rb + 1)
        hdr = Signal(48)                 # payload bytes 0..5, shifted in
        hc = Signal(3)
        ptr = Signal(range(mf + 1))
        # (fast) the ring gives, two clocks after the address
        # fstart + ptr, the bytes at ptr and at ptr + 1: the byte at the ptr of
        # one clock ago is one of them if ptr stepped by at most one since.
        # After a jump (ptr or fstart set) that does not hold for one clock,
        # so a fetch waits a clock after a jump (LOAD and STEP are the only
        # states that can fetch then).
        fast = self.fast
        if fast:
            jump, jumped = Signal(), Signal()      # ptr (or fstart) set: this clock, the last
            step, step1, step2 = Signal(), Signal(), Signal()   # ptr + 1: this clock, 1 and 2 ago
            m.d.sync += [jumped.eq(jump), step1.eq(step), step2.eq(step1)]
            byte = Mux(step2, self.rd_next, self.rd_data)   # valid in the cycle after a fetch()
            # ptr + 1 in a register of its own: the second address is one adder
            # after registers, as the first
            ptr1 = Signal(range(mf + 2))
        else:
            byte = self.rd_data              # valid in the cycle after a fetch()

        def set_ptr(value):
            """Move ``ptr`` to ``value`` (a jump)."""
            m.d.sync += ptr.eq(value)
            if fast:
                m.d.sync += ptr1.eq(value + 1)
                m.d.comb += jump.eq(1)

        def step_ptr():
            m.d.sync += ptr.eq(ptr + 1)
            if fast:
                m.d.sync += ptr1.eq(ptr1 + 1)
                m.d.comb += step.eq(1)

        def after_jump_wait():
            """A context: what must not run in the clock after a jump."""
            return m.If(~jumped) if fast else contextlib.nullcontext()
        dw = Signal(DATA_BITS)           # bus data, and the shift register of emitted words
        nb = Signal(3)
        code = Signal(3)
        lw = Signal(2)
        mbyte = Signal(8)
        bit = Signal(3)
        s = Signal(range(mbody // 2 + 2))
        h = Signal(16)
        h_cnt = h[:(M + 1).bit_length()]   # a sparse record's count, once checked <= M
        idx = Signal(max(8 * ibM, index_width(N)))
        prev = Signal(8 * ibM)
        first = Signal()
        bpos = Signal(range(max(nbN, nbM) + 1))
        cnt = Signal(range(N + 1))
        k = Signal(abits)                # aux address of sequential accesses
        frame_open = Signal()
        flen = Signal(range(mbody + 1))
        chk = Signal()                   # RUN's first pass: check the records only

        region = hdr[0:8]
        reg4 = hdr[0:REGION_BITS]
        start = hdr[8:32]
        cur = hdr[8:8 + ib]              # word index of the current access
        # cur counts in (at least) 16 bits, so that after RANGE, which turns
        # ``left`` (a count below 2**16) into the end index modulo 2**16, the
        # loops end on an equality test instead of counting ``left`` down
        curw = hdr[8:8 + max(ib, 16)]
        cnt16 = hdr[32:48]
        left = cnt16                     # word count (WRITE, READ, WRITE_MASK); after RANGE the end
        done = curw[:16] == left
        steps = hdr[0:16]
        # the most words a READ answer holds: (count << lw) <= mbody - 3 and count < 1024
        rmax = [min((mbody - 3) >> lws[r], 1023) for r in range(16)]
        r_size = Signal(size_w)
        r_lw = Signal(2)
        r_rmax = Signal(range(max(rmax) + 1))
        with m.Switch(reg4):
            for r in range(16):
                with m.Case(r):
                    m.d.comb += [r_size.eq(sizes[r]), r_lw.eq(lws[r]), r_rmax.eq(rmax[r])]
        r_hi = region[REGION_BITS:] != 0
        r_ok_w = ~r_hi & Const(wmask, 16).bit_select(reg4, 1)
        r_ok_r = ~r_hi & Const(rmask, 16).bit_select(reg4, 1)
        start_ok = start[ib:] == 0 if ib < 24 else Const(1)
        # DECODE's tests, computed in CHECK the clock before (a short path to
        # the answer code): a READ's length and count, a WRITE_MASK's length
        # (blen == 8 + ceil(count / 8), without a subtractor), a WRITE's region
        read_ok, mask_ok, write_ok = Signal(), Signal(), Signal()
        lw_r = Signal.like(r_lw)
        range_ok = Signal()
        mask_len = cnt16[3:] + Cat(cnt16[:3] != 0, Const(0b100, 3))

        tail = Mux(streaming, rd_ptr, fstart)
        if fast:
            m.d.comb += self.rd_next_addr.eq((fstart + ptr1)[:rb])
            tail_r = Signal.like(self.tail)          # (fast) a clock late
            m.d.sync += tail_r.eq(tail)
            tail = tail_r
        m.d.comb += [rd_ptr.eq(fstart + ptr), self.rd_addr.eq(rd_ptr[:rb]),
                     self.tail.eq(tail),
                     self.bus.payload.addr.eq(Cat(cur, reg4)),
                     self.bus.payload.wdata.eq(dw)]
        bus_write = Signal()
        m.d.comb += self.bus.payload.write.eq(bus_write)

        def header(kind_value, after, length=3):
            # an answer's header (kind, seq, op, code) is emitted as a word
            emit_word(Cat(Const(kind_value, 8), seq, op, code), length, after)

        def emit_word(value, nbytes, after):
            m.d.sync += [dw.eq(value), nb.eq(nbytes)]
            fsm.call("EMITW", after)

        def fetch(after):
            """Read the byte at ``ptr`` and step ``ptr``: the byte is ``byte``
            (the ring's read port) in the first cycle of state ``after`` only.
            In the clock after a jump it waits (stays in its state)."""
            with after_jump_wait():
                step_ptr()
                fsm.goto(after)

        def fetch_checked(after):
            """As :func:`fetch`, but a read past the payload rejects the command."""
            with m.If(ptr == blen):
                nak(Err.ARGS)
            with m.Else():
                fetch(after)

        def bus_op(write, after):
            m.d.sync += bus_write.eq(write)
            fsm.call("BUS", after)

        def nak(err):
            m.d.sync += code.eq(err)
            fsm.goto("NAK")

        def state(name):
            return fsm.case(name)

        def axon_index_states(first_state, second_state, after, checked):
            """States reading an axon index of ``ibM`` little-endian bytes into ``idx``."""
            with state(first_state):
                if ibM == 1:
                    m.d.sync += idx.eq(byte)
                    fsm.goto(after)
                else:
                    m.d.sync += idx[0:8].eq(byte)
                    (fetch_checked if checked else fetch)(second_state)
            if ibM != 1:
                with state(second_state):
                    m.d.sync += idx[8:16].eq(byte)
                    fsm.goto(after)

        bm_now = cnt * ibN > nbN
        rs = Mux(bm_now, 2 + nbN, 2 + cnt * ibN)
        # whether the record fits the open frame, registered: cnt and flen
        # never change in the cycle before EMIT_REC, and the adders stay
        # off the path to tx.valid
        overfull = Signal()
        m.d.sync += overfull.eq(flen + rs > mbody)
        with m.Switch(fsm.state):
            with state("IDLE"):      # first: state 0
                m.d.comb += self.verdict.ready.eq(1)
                with m.If(self.verdict.valid):
                    v = self.verdict.payload
                    m.d.sync += [op.eq(v.op), seq.eq(v.seq), blen.eq(v.length), hc.eq(0)]
                    set_ptr(2)
                    m.d.sync += owned.eq(v.status == Err.OK)
                    with m.If(v.status == Err.OK):
                        fsm.goto("LOAD")
                    with m.Else():
                        m.d.sync += code.eq(v.status)
                        fsm.goto("NAK")

            with state("LOAD"):         # payload bytes 0..5 into hdr (byte lags ptr by one)
                with after_jump_wait():
                    step_ptr()
                    m.d.sync += hc.eq(hc + 1)
                    with m.If(hc != 0):
                        m.d.sync += hdr.eq(Cat(hdr[8:], byte))
                    with m.If(hc == 6):
                        fsm.goto("CHECK")

            with state("CHECK"):        # the region's limits and the count tests, registered
                m.d.sync += [read_ok.eq((blen == 8) & r_ok_r & (cnt16 <= r_rmax)),
                             mask_ok.eq(((region == Region.W_REC) | (region == Region.W_IN))
                                        & (blen == mask_len)),
                             write_ok.eq(r_ok_w), lw_r.eq(r_lw)]
                fsm.goto("DECODE")

            with state("DECODE"):
                # payload length tests on blen (= payload + 2) directly: no subtractor
                with m.Switch(op):
                    with m.Case(Op.CAPS):
                        with m.If(blen == 2):
                            m.d.sync += k.eq(al["caps"])
                            header(Kind.ACK, "CAPS_RD")
                        with m.Else():
                            nak(Err.ARGS)
                    with m.Case(Op.WRITE):
                        # a writable region's words have at most 2**wlanes bytes, so
                        # only wsh's bits of r_lw matter (any other region is rejected)
                        dlen = (blen - 6)[:len(blen)]
                        wsh = lw_r[:wlanes.bit_length()]
                        align = (dlen & ((Const(1, 4) << wsh) - 1)) == 0
                        m.d.sync += [left.eq(dlen >> wsh), lw.eq(lw_r)]
                        with m.If((blen >= 6) & write_ok & align):
                            set_ptr(6)
                            fsm.goto("RANGE")
                        with m.Else():
                            nak(Err.ARGS)
                    with m.Case(Op.READ):
                        m.d.sync += lw.eq(lw_r)
                        with m.If(read_ok):
                            fsm.goto("RANGE")
                        with m.Else():
                            nak(Err.ARGS)
                    with m.Case(Op.WRITE_MASK):
                        m.d.sync += bit.eq(0)
                        set_ptr(8)
                        with m.If(mask_ok):
                            fsm.goto("RANGE")
                        with m.Else():
                            nak(Err.ARGS)
                    with m.Case(Op.RUN):
                        with m.If(blen >= 4):
                            m.d.sync += s.eq(0)
                            set_ptr(4)
                            m.d.sync += chk.eq(1)
                            fsm.goto("STEP")
                        with m.Else():
                            nak(Err.ARGS)
                    with m.Case(Op.RESET):
                        with m.If((blen == 3) & (hdr[3:8] == 0)):
                            m.d.sync += hdr[0:REGION_BITS].eq(Region.CONTROL)
                            m.d.sync += curw.eq(0)
                            m.d.sync += [mbyte.eq(hdr[0:8]), dw.eq(0)]
                            fsm.goto("RS_0")
                        with m.Else():
                            nak(Err.ARGS)
                    with m.Case(Op.COUNTERS):
                        with m.If(blen == 2):
                            m.d.sync += k.eq(al["counters"])
                            header(Kind.ACK, "C_LINK")
                        with m.Else():
                            nak(Err.ARGS)
                    with m.Default():
                        nak(Err.OPCODE)

            with state("RANGE"):        # WRITE, READ, WRITE_MASK: 1 <= count, start + count <= size
                end = cur + left
                m.d.sync += [left.eq(end[:16]),
                             range_ok.eq((left != 0) & start_ok & (end <= r_size))]
                fsm.goto("RANGE_OK")
            with state("RANGE_OK"):     # the test's adder and comparator are registered
                with m.If(range_ok):
                    m.d.sync += streaming.eq(op != Op.READ)
                    with m.Switch(op):
                        with m.Case(Op.WRITE):
                            fsm.goto("W_LOOP")
                        with m.Case(Op.READ):
                            header(Kind.ACK, "R_LOOP")
                        with m.Default():
                            fsm.goto("W_LOOP")
                with m.Else():
                    nak(Err.ARGS)

            # -- shared subroutines ----------------------------------------------------
            with state("EMITW"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.data.eq(dw[:8])]
                with m.If(self.tx.ready):
                    m.d.sync += [dw.eq(dw >> 8), nb.eq(nb - 1)]
                    with m.If(nb == 1):
                        fsm.return_()
            with state("BUS"):
                m.d.comb += self.bus.valid.eq(1)
                with m.If(self.bus.ready):
                    fsm.goto("BUS_W")
            with state("BUS_W"):
                m.d.comb += self.bus_resp.ready.eq(1)
                with m.If(self.bus_resp.valid):
                    m.d.sync += dw.eq(self.bus_resp.payload.rdata)
                    fsm.return_()

            with state("NAK"):
                with m.If(code == Err.OPCODE):
                    m.d.comb += pend_set[LinkCounter.OPCODE_ERRORS].eq(1)
                with m.If(code == Err.ARGS):
                    m.d.comb += pend_set[LinkCounter.ARG_ERRORS].eq(1)
                m.d.sync += self.error.eq(1)
                header(Kind.NAK, "CLOSE", length=4)     # the error code is the 4th byte
            with state("CLOSE"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.close.eq(1)]
                with m.If(self.tx.ready):
                    fsm.goto("FINISH")
            with state("FINISH"):        # give the frame's bytes back
                with m.If(owned):
                    m.d.sync += fstart.eq(fstart + blen + 4)
                    set_ptr(0)
                m.d.sync += [owned.eq(0), streaming.eq(0)]
                fsm.goto("IDLE")

            # -- CAPS and the link counters: bytes of aux ----------------------------------
            def aux_bytes(rd_state, emit_state, addr, end, after):
                with state(rd_state):
                    with m.If(k == end):
                        fsm.goto(after)
                    with m.Elif(aux_free):
                        aux_read(addr)
                        fsm.goto(emit_state)
                with state(emit_state):
                    aux_hold()
                    with m.If(rv2):
                        m.d.sync += k.eq(k + 1)
                        emit_word(aux_data[:8], 1, rd_state)

            aux_bytes("CAPS_RD", "CAPS_EM", k, al["caps"] + len(self.caps), "CLOSE")

            # -- READ ----------------------------------------------------------------------
            with state("R_LOOP"):
                with m.If(done):
                    fsm.goto("CLOSE")
                with m.Else():
                    bus_op(0, "R_EMIT")
            with state("R_EMIT"):
                m.d.sync += [curw.eq(curw + 1), nb.eq(Const(1, 4) << lw)]
                fsm.call("EMITW", "R_LOOP")

            # -- WRITE (words of 1 or 2 bytes) and WRITE_MASK (read-modify-write of the
            # plastic bit) share their loop; one opcode bit tells them apart
            mask_bit = (Op.WRITE ^ Op.WRITE_MASK).bit_length() - 1
            assert Op.WRITE ^ Op.WRITE_MASK == 1 << mask_bit
            is_mask = op[mask_bit] if Op.WRITE_MASK >> mask_bit & 1 else ~op[mask_bit]
            with state("W_LOOP"):
                with m.If(done):
                    header(Kind.ACK, "CLOSE")
                with m.Elif(~is_mask):
                    m.d.sync += [dw.eq(0), nb.eq(0)]
                    fetch("W_BYTE")
                with m.Elif(bit == 0):
                    fetch("M_BYTE")
                with m.Else():
                    bus_op(0, "M_WR")
            with state("W_BYTE"):
                m.d.sync += [dw.word_select(nb[:wlanes], 8).eq(byte) if wlanes else dw[:8].eq(byte),
                             nb.eq(nb + 1)]
                with m.If(nb[:2] == (Const(1, 4) << lw) - 1):
                    bus_op(1, "W_NEXT")
                with m.Else():
                    fetch("W_BYTE")
            with state("W_NEXT"):
                m.d.sync += [curw.eq(curw + 1), bit.eq(bit + 1)]
                fsm.goto("W_LOOP")
            with state("M_BYTE"):
                m.d.sync += mbyte.eq(byte)
                bus_op(0, "M_WR")
            with state("M_WR"):
                m.d.sync += dw[wb].eq(mbyte.bit_select(bit, 1))
                bus_op(1, "W_NEXT")

            # -- RESET: flags in mbyte; hdr addresses CONTROL 0, then COUNTER 0 ------------
            with state("RS_0"):
                with m.If(mbyte[0]):
                    bus_op(1, "RS_1")
                with m.Else():
                    fsm.goto("RS_1")
            with state("RS_1"):
                m.d.sync += [hdr[0:REGION_BITS].eq(Region.COUNTER), dw.eq(0)]
                with m.If(mbyte[1]):
                    fsm.goto("RS_1B")
                with m.Else():
                    fsm.goto("RS_2")
            with state("RS_1B"):
                bus_op(1, "RS_2")
            with state("RS_2"):
                m.d.sync += k.eq(al["counters"])
                with m.If(mbyte[2]):
                    fsm.goto("RS_CLR")
                with m.Else():
                    header(Kind.ACK, "CLOSE")
            with state("RS_CLR"):        # zero the link counters' bytes in aux
                with m.If(k == al["counters"] + 4 * nctr):
                    header(Kind.ACK, "CLOSE")
                with m.Elif(aux_free):
                    aux_write(k, 0)
                    m.d.sync += k.eq(k + 1)

            # -- COUNTERS ------------------------------------------------------------------
            # each link counter's four bytes are read in consecutive cycles (the
            # updater cannot step in between), so a counter is sent as one value
            with state("C_LINK"):
                with m.If(k == al["counters"] + 4 * nctr):
                    m.d.sync += [hdr[0:REGION_BITS].eq(Region.COUNTER), curw.eq(0)]
                    fsm.goto("C_CORE")
                with m.Elif(aux_free):
                    aux_read(k)
                    m.d.sync += k.eq(k + 1)
                    fsm.goto("C_LB")
            with state("C_LB"):         # the bytes arrive two cycles after their reads
                aux_hold()
                with m.If(rv2):
                    m.d.sync += dw.eq(Cat(dw[8:], aux_data[:8]))
                with m.If(k[:2] != 0):
                    aux_read(k)
                    m.d.sync += k.eq(k + 1)
                with m.Elif(rv2 & ~rv1):      # the counter's last byte
                    m.d.sync += nb.eq(4)
                    fsm.call("EMITW", "C_LINK")
            with state("C_CORE"):
                with m.If(cur == len(Counter)):
                    fsm.goto("CLOSE")
                with m.Else():
                    bus_op(0, "C_CORE_E")
            with state("C_CORE_E"):
                m.d.sync += [curw.eq(curw + 1), nb.eq(4)]
                fsm.call("EMITW", "C_CORE")

            # -- RUN: one record parser, run twice -------------------------------------
            # pass 1 (chk) checks every step record and sends nothing to the core;
            # pass 2 reads the same, now known good, records again and sends their
            # events (its checks can no longer fail)
            with state("STEP"):
                with m.If(ptr == blen):
                    with m.If(~chk):
                        fsm.goto("RX_DONE")
                    with m.Elif(s == steps):
                        set_ptr(4)
                        m.d.sync += [frame_open.eq(0), streaming.eq(1), chk.eq(0)]
                    with m.Else():
                        nak(Err.ARGS)
                with m.Else():
                    fetch("RV_H1")
            with state("RV_H1"):
                m.d.sync += h[0:8].eq(byte)
                fetch_checked("RV_H2")
            with state("RV_H2"):
                m.d.sync += [h[8:16].eq(byte), s.eq(s + 1), bpos.eq(0), first.eq(1)]
                fsm.goto("RV_REC")
            with state("RV_REC"):
                with m.If(h == BITMAP_TAG):
                    fsm.goto("RX_BM")
                with m.Elif(h > M):
                    nak(Err.ARGS)
                with m.Elif(h == 0):
                    with m.If(chk):
                        fsm.goto("STEP")
                    with m.Else():
                        fsm.goto("RX_END")
                with m.Else():
                    fetch_checked("RV_I1")
            axon_index_states("RV_I1", "RV_I2", "RV_CHK", True)
            with state("RV_CHK"):
                m.d.comb += [self.events.valid.eq(~chk), self.events.payload.index.eq(idx)]
                with m.If((idx >= M) | (~first & (idx <= prev))):
                    nak(Err.ARGS)
                with m.Elif(chk | self.events.ready):
                    m.d.sync += [prev.eq(idx), first.eq(0), h_cnt.eq(h_cnt - 1)]
                    fsm.goto("RV_REC")
            with state("RX_BM"):
                with m.If(bpos == nbM):
                    with m.If(chk):
                        fsm.goto("STEP")
                    with m.Else():
                        fsm.goto("RX_END")
                with m.Else():
                    fetch_checked("RX_BB")
            with state("RX_BB"):
                m.d.sync += [mbyte.eq(byte), bit.eq(0)]
                fsm.goto("RX_BIT")
            with state("RX_BIT"):
                bidx = Cat(bit, bpos)
                fire = ~chk & mbyte.bit_select(bit, 1) & (bidx < M)
                m.d.comb += [self.events.valid.eq(fire), self.events.payload.index.eq(bidx)]
                with m.If(~fire | self.events.ready):
                    m.d.sync += bit.eq(bit + 1)
                    with m.If(bit == 7):
                        m.d.sync += bpos.eq(bpos + 1)
                        fsm.goto("RX_BM")
            with state("RX_END"):
                m.d.comb += [self.events.valid.eq(1), self.events.payload.end.eq(1)]
                with m.If(self.events.ready):
                    m.d.sync += cnt.eq(0)
                    fsm.goto("COLLECT")
            sidx = idx[:index_width(N)]
            # a spike's index is registered (idx) before it is stored: the core's
            # RAM output does not reach the aux RAM's inputs in one cycle
            with state("COLLECT"):       # store a spike in the list, then set its bitmap bit
                m.d.comb += self.spikes.ready.eq(aux_free)
                with m.If(self.spikes.valid & aux_free):
                    with m.If(self.spikes.payload.end):
                        fsm.goto("EMIT_REC")
                    with m.Else():
                        aux_hold()
                        m.d.sync += idx.eq(self.spikes.payload.index)
                        fsm.goto("SET_R")
            with state("SET_R"):
                aux_write(at("list", cnt), sidx)
                aux_read(at("map", sidx >> 3))
                m.d.sync += cnt.eq(cnt + 1)
                fsm.goto("SET_W")
            with state("SET_W"):
                aux_hold()
                with m.If(rv2):
                    aux_write(at("map", sidx >> 3), aux_data[:8] | (Const(1, 8) << sidx[:3]))
                    fsm.goto("COLLECT")
            with state("EMIT_REC"):
                with m.If(frame_open & overfull):
                    m.d.comb += [self.tx.valid.eq(1), self.tx.payload.close.eq(1)]
                    with m.If(self.tx.ready):
                        m.d.sync += frame_open.eq(0)
                with m.Elif(~frame_open):
                    m.d.sync += [frame_open.eq(1), flen.eq(2)]
                    header(Kind.SPIKES, "EMIT_REC", length=2)
                with m.Else():
                    m.d.sync += [flen.eq(flen + rs), k.eq(Mux(bm_now, al["map"], al["list"]))]
                    m.d.sync += [dw.eq(Mux(bm_now, BITMAP_TAG, cnt)), nb.eq(2)]
                    fsm.call("EMITW", "SP_OUT")
                    with m.If(bm_now):
                        m.d.sync += fsm.ret.eq(fsm.id("BM_R"))
            with state("BM_R"):          # emit a bitmap byte and clear it
                with m.If(k == al["map"] + nbN):
                    fsm.goto("STEP")
                with m.Elif(aux_free):
                    aux_read(k)
                    fsm.goto("BM_W")
            with state("BM_W"):
                aux_hold()
                with m.If(rv2):
                    aux_write(k, 0)
                    m.d.sync += k.eq(k + 1)
                    emit_word(aux_data[:8], 1, "BM_R")
            # emit the list entries; each clears the bitmap byte of the entry
            # before it (idx; the first clears that of the step's last spike,
            # also in the bitmap), and the last is cleared on the way out
            with state("SP_OUT"):
                with m.If(aux_free):
                    aux_write(at("map", sidx >> 3), 0)
                    with m.If(k == at("list", cnt)):   # a list has fewer than N entries
                        fsm.goto("STEP")
                    with m.Else():
                        aux_read(k)
                        fsm.goto("SP_W")
            with state("SP_W"):
                aux_hold()
                with m.If(rv2):
                    m.d.sync += [k.eq(k + 1), idx.eq(aux_data)]
                    emit_word(aux_data[:index_width(N)], ibN, "SP_OUT")
            with state("RX_DONE"):
                with m.If(frame_open):
                    m.d.comb += [self.tx.valid.eq(1), self.tx.payload.close.eq(1)]
                    with m.If(self.tx.ready):
                        m.d.sync += frame_open.eq(0)
                with m.Else():
                    header(Kind.ACK, "RX_ACK")
            with state("RX_ACK"):
                emit_word(steps, 2, "CLOSE")
        fsm.finish()
        aux_ports()
        return m
