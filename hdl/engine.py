"""Command engine of the link: executes judged frames on the core's streams.

The engine reads a good frame from the deframer's buffer, checks its payload
completely before it touches the core (a rejected command changes nothing),
drives the core's ``bus``/``events``/``spikes`` streams (``neurocorex.regmap``)
and answers through the framer.  It is bit-for-bit the Python engine of
:mod:`neurocorex.sim.vboard`; both follow :mod:`neurocorex.protocol`.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..formats import CoreConfig
from ..protocol import (Op, Kind, Err, LinkCounter, VERDICT_COUNTER, WRITABLE, READABLE,
                        word_bytes, region_size, max_body, index_bytes, bitmap_bytes,
                        BITMAP_TAG, check_config)
from ..regmap import Region, Counter, DATA_BITS, REGION_BITS, index_bits, addr_bits
from .framing import Verdict, TxItem
from .layouts import bus_request_layout, bus_response_layout, event_layout, spike_layout

__all__ = ["CommandEngine", "bus_layouts", "index_width"]


def index_width(size: int) -> int:
    return max(1, (size - 1).bit_length())


def bus_layouts(config: CoreConfig) -> dict:
    """Payload layouts of the core's streams (from :mod:`neurocorex.hdl.layouts`)."""
    return {"bus": bus_request_layout(config), "bus_resp": bus_response_layout(config),
            "events": event_layout(config), "spikes": spike_layout(config)}


class CommandEngine(wiring.Component):
    """Execute commands; see ``docs/spec.md`` §5.

    Parameters
    ----------
    config : CoreConfig
    max_frame : int
        Frame buffer depth (decoded bytes).
    caps : bytes
        The CAPS answer (``protocol.caps_payload``).

    Attributes
    ----------
    verdict : In(stream of Verdict)
    judged : In(stream of status), dropped : In(1)
        Deframer events, for the link counters.
    rd_addr, rd_data : frame buffer read port (one cycle latency).
    release, release_bank : Out(1), Out(1)
        Pulse when the engine is done with the frame in that bank.
    tx : Out(stream of TxItem)
    bus, bus_resp, events, spikes : the core's streams.
    error : Out(1)
        Pulses on every rejected frame (for a LED).
    """

    def __init__(self, config: CoreConfig, *, max_frame: int, caps: bytes):
        check_config(config, max_frame)
        self.config = config
        self.max_frame = max_frame
        self.caps = bytes(caps)
        lay = bus_layouts(config)
        super().__init__({
            "verdict": In(stream.Signature(Verdict)),
            "judged": In(stream.Signature(3, always_ready=True)),
            "dropped": In(1),
            "rd_addr": Out(range(2 * max_frame)),
            "rd_data": In(8),
            "release": Out(1),
            "release_bank": Out(1),
            "tx": Out(stream.Signature(TxItem)),
            "bus": Out(stream.Signature(lay["bus"])),
            "bus_resp": In(stream.Signature(lay["bus_resp"])),
            "events": Out(stream.Signature(lay["events"])),
            "spikes": In(stream.Signature(lay["spikes"])),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        N, M = cfg.neurons, cfg.inputs
        ib = index_bits(cfg)
        mbody = max_body(self.max_frame)
        ibN, ibM = index_bytes(N), index_bytes(M)
        nbN, nbM = bitmap_bytes(N), bitmap_bytes(M)

        # -- link counters --------------------------------------------------------------
        ctr = Array(Signal(32, name=f"ctr_{c.name.lower()}") for c in LinkCounter)
        inc = [Signal(name=f"inc_{c.name.lower()}") for c in LinkCounter]
        clear_ctr = Signal()
        for c in set(VERDICT_COUNTER.values()):
            hit = 0
            for status, cc in VERDICT_COUNTER.items():
                if cc == c:
                    hit = hit | (self.judged.payload == status)
            m.d.comb += inc[c].eq(self.judged.valid & hit)
        m.d.comb += inc[LinkCounter.DROPPED_REPLIES].eq(self.dropped)
        for c in LinkCounter:
            with m.If(clear_ctr):
                m.d.sync += ctr[c].eq(inc[c])
            with m.Elif(inc[c]):
                m.d.sync += ctr[c].eq(ctr[c] + 1)
        m.d.sync += self.error.eq(self.judged.valid & (self.judged.payload != Err.OK))

        # -- region tables ------------------------------------------------------------
        regions = list(Region)
        size_t = Array(Const(region_size(cfg, r) if r in regions else 0, 26) for r in range(16))
        lw_t = Array(Const((word_bytes(cfg, r) if r in regions else 1).bit_length() - 1, 2)
                     for r in range(16))
        wmask = Const(sum(1 << int(r) for r in WRITABLE), 16)
        rmask = Const(sum(1 << int(r) for r in READABLE), 16)
        caps_rom = Array(Const(b, 8) for b in self.caps)

        # -- spike collection memories --------------------------------------------------
        m.submodules.spk_list = spk_list = Memory(shape=index_width(N), depth=N, init=[])
        lw_p, lr_p = spk_list.write_port(), spk_list.read_port()
        m.submodules.spk_map = spk_map = Memory(shape=8, depth=nbN, init=[])
        bw_p, br_p = spk_map.write_port(), spk_map.read_port()

        # -- registers -----------------------------------------------------------------
        op = Signal(8)
        seq = Signal(8)
        blen = Signal(16)
        owned = Signal()            # the current command came from the buffer
        bank = Signal()             # ... from this bank of it
        hdr = Signal(64)            # payload bytes 0..7
        hc = Signal(4)
        ptr = Signal(range(self.max_frame + 1))
        byte = Signal(8)
        word = Signal(32)
        nb = Signal(3)
        kind = Signal(8)
        hdr_len = Signal(2)
        code = Signal(3)
        k = Signal(17)
        count = Signal(17)
        b_addr = Signal(addr_bits(cfg))
        b_wdata = Signal(DATA_BITS)
        b_write = Signal()
        rdata = Signal(DATA_BITS)
        mbyte = Signal(8)
        steps = Signal(16)
        s = Signal(17)
        remaining = Signal(16)
        h = Signal(16)
        idx = Signal(16)
        prev = Signal(16)
        first = Signal()
        bpos = Signal(range(max(nbN, nbM) + 1))
        bit = Signal(3)
        cnt = Signal(range(N + 1))
        sidx = Signal(index_width(N))
        frame_open = Signal()
        flen = Signal(16)
        use_bm = Signal()

        payload_len = Signal(16)
        m.d.comb += payload_len.eq(blen - 2)
        region = hdr[0:8]
        start = hdr[8:32]
        cnt16 = hdr[32:48]
        reg4 = region[:REGION_BITS]
        r_size = size_t[reg4]
        r_lw = lw_t[reg4]
        r_ok_w = (region < 16) & wmask.bit_select(reg4, 1)
        r_ok_r = (region < 16) & rmask.bit_select(reg4, 1)

        def addr_of(reg, index):
            return Cat(Cat(index, Const(0, ib))[:ib], reg[:REGION_BITS])

        m.d.comb += [self.rd_addr.eq(Mux(bank, self.max_frame, 0) + ptr[:len(self.rd_addr) - 1]),
                     self.release_bank.eq(bank),
                     self.bus.payload.addr.eq(b_addr), self.bus.payload.wdata.eq(b_wdata),
                     self.bus.payload.write.eq(b_write)]

        RETS = ["CAPS_BODY", "CLOSE", "W_NEXT", "R_EMIT", "R_LOOP", "M_WR", "M_NEXT", "M_BYTE",
                "RS_1", "RS_2", "C_LINK", "C_CORE", "C_CORE_E", "NAK_CODE",
                "RV_H1", "RV_H2", "RV_I1", "RV_I2", "RX_H1", "RX_H2", "RX_S1", "RX_S2", "RX_BB",
                "EMIT_REC", "EMIT_DATA", "BM_R", "SP_OUT", "RX_ACK"]
        ret = Signal(range(len(RETS)))

        def call(state, after):
            m.d.sync += ret.eq(RETS.index(after))
            m.next = state

        def return_():
            with m.Switch(ret):
                for i, name in enumerate(RETS):
                    with m.Case(i):
                        m.next = name

        def header(kind_value, after, length=3):
            m.d.sync += [kind.eq(kind_value), hdr_len.eq(length - 1), hc.eq(0)]
            call("HDR", after)

        def emit_word(value, nbytes, after):
            m.d.sync += [word.eq(value), nb.eq(nbytes)]
            call("EMITW", after)

        def fetch(after):
            call("FETCH", after)

        def bus_op(addr, wdata, write, after):
            m.d.sync += [b_addr.eq(addr), b_wdata.eq(wdata), b_write.eq(write)]
            call("BUS", after)

        def nak(err):
            m.d.sync += code.eq(err)
            m.next = "NAK"

        def axon_index_states(first, second, after):
            """States reading an axon index of ``ibM`` little-endian bytes into ``idx``."""
            with m.State(first):
                if ibM == 1:
                    m.d.sync += idx.eq(byte)
                    m.next = after
                else:
                    m.d.sync += idx[0:8].eq(byte)
                    fetch(second)
            with m.State(second):           # in RETS, so defined even when unused
                m.d.sync += idx[8:16].eq(byte)
                m.next = after

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.verdict.ready.eq(1)
                with m.If(self.verdict.valid):
                    v = self.verdict.payload
                    m.d.sync += [op.eq(v.op), seq.eq(v.seq), blen.eq(v.length), hc.eq(0),
                                 ptr.eq(2), owned.eq(v.status == Err.OK), bank.eq(v.bank)]
                    with m.If(v.status == Err.OK):
                        m.next = "LOAD"
                    with m.Else():
                        m.d.sync += code.eq(v.status)
                        m.next = "NAK"

            with m.State("LOAD"):
                m.d.sync += [ptr.eq(ptr + 1), hc.eq(hc + 1)]
                with m.If(hc != 0):
                    m.d.sync += hdr.word_select((hc - 1)[:3], 8).eq(self.rd_data)
                with m.If(hc == 8):
                    m.next = "DECODE"

            with m.State("DECODE"):
                P = payload_len
                m.d.sync += k.eq(0)
                with m.Switch(op):
                    with m.Case(Op.CAPS):
                        with m.If(P == 0):
                            header(Kind.ACK, "CAPS_BODY")
                        with m.Else():
                            nak(Err.ARGS)
                    with m.Case(Op.WRITE):
                        dlen = Signal(16)
                        m.d.comb += dlen.eq(P - 4)
                        wcount = dlen >> r_lw
                        align = (dlen & ((Const(1, 4) << r_lw) - 1)) == 0
                        with m.If((P >= 4) & r_ok_w & align & (wcount != 0)
                                  & (start + wcount <= r_size)):
                            m.d.sync += [count.eq(wcount), ptr.eq(6)]
                            m.next = "W_LOOP"
                        with m.Else():
                            nak(Err.ARGS)
                    with m.Case(Op.READ):
                        with m.If((P == 6) & r_ok_r & (cnt16 != 0)
                                  & ((cnt16 << r_lw) <= mbody - 3) & (start + cnt16 <= r_size)):
                            m.d.sync += count.eq(cnt16)
                            header(Kind.ACK, "R_LOOP")
                        with m.Else():
                            nak(Err.ARGS)
                    with m.Case(Op.WRITE_MASK):
                        with m.If((P >= 6) & ((region == Region.W_REC) | (region == Region.W_IN))
                                  & (cnt16 != 0) & (P == 6 + ((cnt16 + 7) >> 3))
                                  & (start + cnt16 <= r_size)):
                            m.d.sync += [count.eq(cnt16), ptr.eq(8)]
                            m.next = "M_LOOP"
                        with m.Else():
                            nak(Err.ARGS)
                    with m.Case(Op.RUN):
                        with m.If(P >= 2):
                            m.d.sync += [steps.eq(hdr[0:16]), remaining.eq(P - 2), s.eq(0),
                                         ptr.eq(4)]
                            m.next = "RV"
                        with m.Else():
                            nak(Err.ARGS)
                    with m.Case(Op.RESET):
                        with m.If((P == 1) & (hdr[0:8] < 8)):
                            m.next = "RS_0"
                        with m.Else():
                            nak(Err.ARGS)
                    with m.Case(Op.COUNTERS):
                        with m.If(P == 0):
                            header(Kind.ACK, "C_LINK")
                        with m.Else():
                            nak(Err.ARGS)
                    with m.Default():
                        nak(Err.OPCODE)

            # -- shared subroutines ----------------------------------------------------
            with m.State("HDR"):
                m.d.comb += [self.tx.valid.eq(1),
                             self.tx.payload.data.eq(Mux(hc == 0, kind, Mux(hc == 1, seq, op)))]
                with m.If(self.tx.ready):
                    m.d.sync += hc.eq(hc + 1)
                    with m.If(hc == hdr_len):
                        return_()
            with m.State("EMITW"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.data.eq(word[:8])]
                with m.If(self.tx.ready):
                    m.d.sync += [word.eq(word >> 8), nb.eq(nb - 1)]
                    with m.If(nb == 1):
                        return_()
            with m.State("FETCH"):          # wait one cycle for rd_data at ptr
                m.next = "FETCH_W"
            with m.State("FETCH_W"):
                m.d.sync += [byte.eq(self.rd_data), ptr.eq(ptr + 1)]
                return_()
            with m.State("BUS"):
                m.d.comb += self.bus.valid.eq(1)
                with m.If(self.bus.ready):
                    m.next = "BUS_W"
            with m.State("BUS_W"):
                m.d.comb += self.bus_resp.ready.eq(1)
                with m.If(self.bus_resp.valid):
                    m.d.sync += rdata.eq(self.bus_resp.payload.rdata)
                    return_()

            with m.State("NAK"):
                with m.If(code == Err.OPCODE):
                    m.d.comb += inc[LinkCounter.OPCODE_ERRORS].eq(1)
                with m.If(code == Err.ARGS):
                    m.d.comb += inc[LinkCounter.ARG_ERRORS].eq(1)
                m.d.sync += self.error.eq(1)
                header(Kind.NAK, "NAK_CODE")
            with m.State("NAK_CODE"):
                emit_word(code, 1, "CLOSE")
            with m.State("CLOSE"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.close.eq(1)]
                with m.If(self.tx.ready):
                    m.next = "FINISH"
            with m.State("FINISH"):
                m.d.comb += self.release.eq(owned)
                m.d.sync += owned.eq(0)
                m.next = "IDLE"

            # -- CAPS ----------------------------------------------------------------------
            with m.State("CAPS_BODY"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.data.eq(caps_rom[k[:8]])]
                with m.If(self.tx.ready):
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == len(self.caps) - 1):
                        m.next = "CLOSE"

            # -- WRITE: words of 1, 2 or 4 bytes ------------------------------------------
            with m.State("W_LOOP"):
                with m.If(k == count):
                    header(Kind.ACK, "CLOSE")
                with m.Else():
                    m.d.sync += [b_wdata.eq(0), nb.eq(0)]
                    m.next = "W_FETCH"
            with m.State("W_FETCH"):
                m.next = "W_BYTE"
            with m.State("W_BYTE"):
                m.d.sync += [b_wdata.word_select(nb[:2], 8).eq(self.rd_data), ptr.eq(ptr + 1),
                             nb.eq(nb + 1)]
                with m.If(nb == (Const(1, 4) << r_lw) - 1):
                    m.d.sync += [b_addr.eq(addr_of(region, start + k)), b_write.eq(1)]
                    call("BUS", "W_NEXT")
                with m.Else():
                    m.next = "W_FETCH"
            with m.State("W_NEXT"):
                m.d.sync += k.eq(k + 1)
                m.next = "W_LOOP"

            # -- READ ----------------------------------------------------------------------
            with m.State("R_LOOP"):
                with m.If(k == count):
                    m.next = "CLOSE"
                with m.Else():
                    bus_op(addr_of(region, start + k), 0, 0, "R_EMIT")
            with m.State("R_EMIT"):
                m.d.sync += k.eq(k + 1)
                emit_word(rdata, Const(1, 4) << r_lw, "R_LOOP")

            # -- WRITE_MASK: read-modify-write of the plastic bit ------------------------
            wb = cfg.weight_bits
            with m.State("M_LOOP"):
                with m.If(k == count):
                    header(Kind.ACK, "CLOSE")
                with m.Elif(k[:3] == 0):
                    fetch("M_BYTE")
                with m.Else():
                    bus_op(addr_of(region, start + k), 0, 0, "M_WR")
            with m.State("M_BYTE"):
                m.d.sync += mbyte.eq(byte)
                bus_op(addr_of(region, start + k), 0, 0, "M_WR")
            with m.State("M_WR"):
                new = Signal(DATA_BITS)
                m.d.comb += new.eq(rdata)
                m.d.comb += new[wb].eq(mbyte.bit_select(k[:3], 1))
                bus_op(addr_of(region, start + k), new, 1, "M_NEXT")
            with m.State("M_NEXT"):
                m.d.sync += k.eq(k + 1)
                m.next = "M_LOOP"

            # -- RESET ---------------------------------------------------------------------
            flags = hdr[0:8]
            with m.State("RS_0"):
                with m.If(flags[0]):
                    bus_op(addr_of(Const(Region.CONTROL, 4), Const(0, 1)), 0, 1, "RS_1")
                with m.Else():
                    m.next = "RS_1"
            with m.State("RS_1"):
                with m.If(flags[1]):
                    bus_op(addr_of(Const(Region.COUNTER, 4), Const(0, 1)), 0, 1, "RS_2")
                with m.Else():
                    m.next = "RS_2"
            with m.State("RS_2"):
                m.d.comb += clear_ctr.eq(flags[2])
                header(Kind.ACK, "CLOSE")

            # -- COUNTERS ------------------------------------------------------------------
            with m.State("C_LINK"):
                with m.If(k == len(LinkCounter)):
                    m.d.sync += k.eq(0)
                    m.next = "C_CORE"
                with m.Else():
                    m.d.sync += k.eq(k + 1)
                    emit_word(ctr[k[:3]], 4, "C_LINK")
            with m.State("C_CORE"):
                with m.If(k == len(Counter)):
                    m.next = "CLOSE"
                with m.Else():
                    bus_op(addr_of(Const(Region.COUNTER, 4), k), 0, 0, "C_CORE_E")
            with m.State("C_CORE_E"):
                m.d.sync += k.eq(k + 1)
                emit_word(rdata, 4, "C_CORE")

            # -- RUN, pass 1: check every step record -------------------------------------
            with m.State("RV"):
                with m.If(remaining == 0):
                    with m.If(s == steps):
                        m.d.sync += [ptr.eq(4), s.eq(0), frame_open.eq(0)]
                        m.next = "RX_STEP"
                    with m.Else():
                        nak(Err.ARGS)
                with m.Elif(remaining < 2):
                    nak(Err.ARGS)
                with m.Else():
                    fetch("RV_H1")
            with m.State("RV_H1"):
                m.d.sync += h[0:8].eq(byte)
                fetch("RV_H2")
            with m.State("RV_H2"):
                m.d.sync += [h[8:16].eq(byte), remaining.eq(remaining - 2), s.eq(s + 1)]
                m.next = "RV_REC"
            with m.State("RV_REC"):
                with m.If(h == BITMAP_TAG):
                    with m.If(remaining < nbM):
                        nak(Err.ARGS)
                    with m.Else():
                        m.d.sync += [ptr.eq(ptr + nbM), remaining.eq(remaining - nbM)]
                        m.next = "RV"
                with m.Elif((h > M) | (remaining < h * ibM)):
                    nak(Err.ARGS)
                with m.Else():
                    m.d.sync += [k.eq(0), first.eq(1), remaining.eq(remaining - h * ibM)]
                    m.next = "RV_IDX"
            with m.State("RV_IDX"):
                with m.If(k == h):
                    m.next = "RV"
                with m.Else():
                    fetch("RV_I1")
            axon_index_states("RV_I1", "RV_I2", "RV_CHK")
            with m.State("RV_CHK"):
                with m.If((idx >= M) | (~first & (idx <= prev))):
                    nak(Err.ARGS)
                with m.Else():
                    m.d.sync += [prev.eq(idx), first.eq(0), k.eq(k + 1)]
                    m.next = "RV_IDX"

            # -- RUN, pass 2: events in, spikes out ---------------------------------------
            with m.State("RX_STEP"):
                with m.If(s == steps):
                    m.next = "RX_DONE"
                with m.Else():
                    fetch("RX_H1")
            with m.State("RX_H1"):
                m.d.sync += h[0:8].eq(byte)
                fetch("RX_H2")
            with m.State("RX_H2"):
                m.d.sync += [h[8:16].eq(byte), k.eq(0), bpos.eq(0)]
                with m.If(Cat(h[0:8], byte) == BITMAP_TAG):
                    m.next = "RX_BM"
                with m.Else():
                    m.next = "RX_SP"
            with m.State("RX_SP"):
                with m.If(k == h):
                    m.next = "RX_END"
                with m.Else():
                    fetch("RX_S1")
            axon_index_states("RX_S1", "RX_S2", "RX_EV")
            with m.State("RX_EV"):
                m.d.comb += [self.events.valid.eq(1), self.events.payload.index.eq(idx)]
                with m.If(self.events.ready):
                    m.d.sync += k.eq(k + 1)
                    m.next = "RX_SP"
            with m.State("RX_BM"):
                with m.If(bpos == nbM):
                    m.next = "RX_END"
                with m.Else():
                    fetch("RX_BB")
            with m.State("RX_BB"):
                m.d.sync += [mbyte.eq(byte), bit.eq(0)]
                m.next = "RX_BIT"
            with m.State("RX_BIT"):
                bidx = Cat(bit, bpos)
                fire = mbyte.bit_select(bit, 1) & (bidx < M)
                m.d.comb += [self.events.valid.eq(fire), self.events.payload.index.eq(bidx)]
                with m.If(~fire | self.events.ready):
                    m.d.sync += bit.eq(bit + 1)
                    with m.If(bit == 7):
                        m.d.sync += bpos.eq(bpos + 1)
                        m.next = "RX_BM"
            with m.State("RX_END"):
                m.d.comb += [self.events.valid.eq(1), self.events.payload.end.eq(1)]
                with m.If(self.events.ready):
                    m.d.sync += cnt.eq(0)
                    m.next = "COLLECT"
            with m.State("COLLECT"):
                m.d.comb += self.spikes.ready.eq(1)
                with m.If(self.spikes.valid):
                    with m.If(self.spikes.payload.end):
                        m.next = "EMIT_REC"
                    with m.Else():
                        m.d.comb += [lw_p.addr.eq(cnt), lw_p.data.eq(self.spikes.payload.index),
                                     lw_p.en.eq(1)]
                        m.d.sync += [cnt.eq(cnt + 1), sidx.eq(self.spikes.payload.index)]
                        m.next = "SET_R"
            with m.State("SET_R"):
                m.d.comb += br_p.addr.eq(sidx >> 3)
                m.next = "SET_W"
            with m.State("SET_W"):
                m.d.comb += [bw_p.addr.eq(sidx >> 3), bw_p.en.eq(1),
                             bw_p.data.eq(br_p.data | (Const(1, 8) << sidx[:3]))]
                m.next = "COLLECT"
            with m.State("EMIT_REC"):
                bm_now = cnt * ibN > nbN
                rs = Mux(bm_now, 2 + nbN, 2 + cnt * ibN)
                m.d.sync += use_bm.eq(bm_now)
                with m.If(frame_open & (flen + rs > mbody)):
                    m.d.comb += [self.tx.valid.eq(1), self.tx.payload.close.eq(1)]
                    with m.If(self.tx.ready):
                        m.d.sync += frame_open.eq(0)
                with m.Elif(~frame_open):
                    m.d.sync += [frame_open.eq(1), flen.eq(2)]
                    header(Kind.SPIKES, "EMIT_REC", length=2)
                with m.Else():
                    m.d.sync += [flen.eq(flen + rs), k.eq(0), bpos.eq(0)]
                    emit_word(Mux(bm_now, BITMAP_TAG, cnt), 2, "EMIT_DATA")
            with m.State("EMIT_DATA"):
                with m.If(use_bm):
                    m.next = "BM_R"
                with m.Else():
                    m.next = "SP_OUT"
            with m.State("BM_R"):
                with m.If(bpos == nbN):
                    m.next = "EMIT_NEXT"
                with m.Else():
                    m.d.comb += br_p.addr.eq(bpos)
                    m.next = "BM_W"
            with m.State("BM_W"):
                m.d.comb += [bw_p.addr.eq(bpos), bw_p.data.eq(0), bw_p.en.eq(1)]
                m.d.sync += bpos.eq(bpos + 1)
                emit_word(br_p.data, 1, "BM_R")
            with m.State("SP_OUT"):
                with m.If(k == cnt):
                    m.next = "EMIT_NEXT"
                with m.Else():
                    m.d.comb += lr_p.addr.eq(k)
                    m.next = "SP_W"
            with m.State("SP_W"):
                m.d.comb += [bw_p.addr.eq(lr_p.data >> 3), bw_p.data.eq(0), bw_p.en.eq(1)]
                m.d.sync += k.eq(k + 1)
                emit_word(lr_p.data, ibN, "SP_OUT")
            with m.State("EMIT_NEXT"):
                m.d.sync += s.eq(s + 1)
                m.next = "RX_STEP"
            with m.State("RX_DONE"):
                with m.If(frame_open):
                    m.d.comb += [self.tx.valid.eq(1), self.tx.payload.close.eq(1)]
                    with m.If(self.tx.ready):
                        m.d.sync += frame_open.eq(0)
                with m.Else():
                    header(Kind.ACK, "RX_ACK")
            with m.State("RX_ACK"):
                emit_word(steps, 2, "CLOSE")
        return m
