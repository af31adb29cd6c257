"""Frame codec of the link: SLIP delimiting, length and CRC-16 (``neurocorex.protocol``).

:class:`Deframer` judges every received frame exactly as
:class:`neurocorex.protocol.Deframer` does and stores a good one in its frame
buffer; :class:`Framer` wraps a stream of body bytes into a frame.
"""

from amaranth.hdl import Cat, Module, Signal, Mux
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..protocol import (END, ESC, ESC_END, ESC_ESC, MIN_FRAME, TRAILER_BYTES, Err, CRC_INIT)
from .crc import crc16_next
from .ramports import NO_RW_CHECK
from .uart import RxByte

__all__ = ["Verdict", "Deframer", "TxItem", "Framer"]

#: What the deframer reports for each delimited, non-empty frame.  Good frames
#: lie in the ring one behind the other, so a good frame starts where the
#: previous good frame ended (the engine keeps that pointer).
Verdict = data.StructLayout({"status": 3, "op": 8, "seq": 8, "length": 16})


def ring_bits(max_frame: int) -> int:
    """log2 of the frame ring's size: the smallest power of two >= ``max_frame``."""
    return max(1, (max_frame - 1).bit_length())
#: Body byte for the framer, or (``close=1``) the end of the current frame.
TxItem = data.StructLayout({"data": 8, "close": 1})


class Deframer(wiring.Component):
    """Receive frames into the frame buffer and judge them.

    Never stalls the receiver: every byte is taken in the cycle it arrives, so
    the error counters do not depend on timing.  The buffer is a ring of
    ``2**ring_bits(max_frame)`` bytes: good frames are kept one behind the
    other, a rejected frame's bytes are given back at once, and the engine
    gives bytes back through ``tail`` as it consumes them (a WRITE frame is
    freed word by word while it executes, so a host may send the next frame
    before the answer to the previous one).  A byte to be stored while the
    ring is full makes its frame an ``OVERRUN``.  A verdict waits in a queue
    (by default of one: the engine takes the next verdict as soon as it is
    idle, so one frame may wait while another executes); when the queue is
    full a rejected frame's verdict is dropped (``dropped`` pulses) and a good
    frame is turned into an overrun.

    Parameters
    ----------
    max_frame : int
        Longest frame in decoded bytes.
    read_latency : 1 or 2
        Clocks from ``rd_addr`` to ``rd_data``.  With 2 the block RAM's read
        data goes through a second register before it reaches the engine, so
        the RAM's slow clock-to-output (5.8 ns on ECP5) and its route are off
        the engine's paths, and a second read port (``rd_next_addr``,
        ``rd_next``: a copy of the ring in a second block RAM) gives the
        byte after, which lets the engine still take a byte a clock after
        its address (:class:`~neurocorex.hdl.engine.CommandEngine`).

    Attributes
    ----------
    inp : In(stream of RxByte), always ready
    verdict : Out(stream of Verdict)
    judged : Out(stream of 3-bit status), always ready
        Every verdict, in the cycle it is made, including dropped ones (for counters).
    dropped : Out(1)
    rd_addr, rd_data : In, Out
        Read port of the ring, ``read_latency`` clocks from address to data.
    rd_next_addr, rd_next : In, Out(8)
        With ``read_latency`` 2 only: a second read port, as ``rd_addr`` and
        ``rd_data`` (the engine reads the byte after ``rd_addr`` with it).
    tail : In(ring_bits + 1)
        Pointer (with wrap bit) of the oldest byte the engine still needs;
        the bytes from ``tail`` up to the frame being received are kept.
    """

    def __init__(self, max_frame: int, fifo_depth: int = 1, *, read_latency: int = 1):
        if read_latency not in (1, 2):
            self._MustUse__silence = True        # (refused: nothing to elaborate)
            raise ValueError(f"read_latency must be 1 or 2, not {read_latency!r}")
        self.max_frame = max_frame
        self.fifo_depth = fifo_depth
        self.read_latency = read_latency
        super().__init__({
            "inp": In(stream.Signature(RxByte, always_ready=True)),
            "verdict": Out(stream.Signature(Verdict)),
            "judged": Out(stream.Signature(3, always_ready=True)),
            "dropped": Out(1),
            "rd_addr": In(ring_bits(max_frame)),
            "rd_data": Out(8),
            **({"rd_next_addr": In(ring_bits(max_frame)), "rd_next": Out(8)}
               if read_latency == 2 else {}),
            "tail": In(ring_bits(max_frame) + 1),
        })

    def elaborate(self, platform):
        m = Module()
        mf = self.max_frame
        rb = ring_bits(mf)
        m.submodules.buf = buf = Memory(shape=8, depth=1 << rb, init=[], attrs=NO_RW_CHECK)
        fs = Signal(rb + 1)        # where the frame being received starts
        wp = buf.write_port()
        rp = buf.read_port(domain="comb")
        rd_q = Signal(8, reset_less=True)
        m.d.sync += rd_q.eq(rp.data)
        m.d.comb += rp.addr.eq(self.rd_addr)
        if self.read_latency == 2:
            # a second register after each read port, the byte after from a second one
            np = buf.read_port(domain="comb")
            nx_q = Signal(8, reset_less=True)
            rd_q2, nx_q2 = Signal(8, reset_less=True), Signal(8, reset_less=True)
            m.d.comb += np.addr.eq(self.rd_next_addr)
            m.d.sync += [nx_q.eq(np.data), rd_q2.eq(rd_q), nx_q2.eq(nx_q)]
            m.d.comb += self.rd_next.eq(nx_q2)
            rd_q = rd_q2
        m.d.comb += self.rd_data.eq(rd_q)
        # verdicts queue with only as many length bits as a frame can have
        lbits = (mf + 1).bit_length()
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=3 + 8 + 8 + lbits, depth=self.fifo_depth)
        m.d.comb += [self.verdict.valid.eq(fifo.r_rdy), fifo.r_en.eq(self.verdict.ready)]
        rv = self.verdict.payload
        m.d.comb += Cat(rv.status, rv.op, rv.seq, rv.length[:lbits]).eq(fifo.r_data)

        count = Signal(range(mf + 2))
        crc = Signal(16, init=CRC_INIT)
        esc = Signal()
        seen = Signal()
        bad = Signal()
        overrun = Signal()
        op = Signal(8)
        seq = Signal(8)
        # The length field opens the trailer: a byte at index i is its low byte
        # if the frame ends TRAILER_BYTES bytes later, so it must then equal
        # i (the body length is count - TRAILER_BYTES); the high byte, one
        # later, must equal (i - 1) >> 8.  Each byte's two answers are delayed
        # until the END shows which byte was which (bits, not the bytes).
        len_lo = Signal(TRAILER_BYTES)         # newest in bit 0
        len_hi = Signal(TRAILER_BYTES - 1)
        # (i - 1) >> 8 for byte index i is the previous byte's count >> 8 (the
        # count steps by one per byte; once it stops the frame is too long,
        # and at i = 0 the answer does not matter: such a frame is too short)
        prev_hi = Signal(len(count) - 8 if len(count) > 8 else 1)

        b = self.inp.payload.data
        dec = Signal(8)            # decoded byte
        dec_en = Signal()
        is_end = self.inp.valid & (b == END)
        is_data = self.inp.valid & (b != END)

        with m.If(is_data):
            m.d.sync += seen.eq(1)
            with m.If(self.inp.payload.error):
                m.d.sync += bad.eq(1)
            with m.If(esc):
                m.d.sync += esc.eq(0)
                with m.If(b == ESC_END):
                    m.d.comb += [dec.eq(END), dec_en.eq(1)]
                with m.Elif(b == ESC_ESC):
                    m.d.comb += [dec.eq(ESC), dec_en.eq(1)]
                with m.Else():
                    m.d.sync += bad.eq(1)
            with m.Elif(b == ESC):
                m.d.sync += esc.eq(1)
            with m.Else():
                m.d.comb += [dec.eq(b), dec_en.eq(1)]

        wptr = Signal(rb + 1)
        full = Signal()
        m.d.comb += [wptr.eq(fs + count), full.eq((wptr - self.tail)[rb])]
        with m.If(dec_en):
            m.d.sync += [crc.eq(crc16_next(crc, dec)),
                         len_lo.eq(Cat(dec == count[:8], len_lo)),
                         len_hi.eq(Cat(dec == prev_hi, len_hi)), prev_hi.eq(count[8:])]
            with m.If(count <= mf):
                m.d.sync += count.eq(count + 1)
            with m.If(count == 0):
                m.d.sync += op.eq(dec)
            with m.If(count == 1):
                m.d.sync += seq.eq(dec)
            with m.If(count < mf):
                with m.If(full):
                    m.d.sync += overrun.eq(1)
                with m.Elif(~overrun):
                    m.d.comb += [wp.addr.eq(wptr[:rb]), wp.data.eq(dec), wp.en.eq(1)]

        # the verdict of the frame an END closes, in the protocol's order
        status = Signal(3)
        length_ok = len_lo[-1] & len_hi[-1]
        with m.If(overrun):
            m.d.comb += status.eq(Err.OVERRUN)
        with m.Elif(bad | esc):
            m.d.comb += status.eq(Err.FRAMING)
        with m.Elif(count > mf):
            m.d.comb += status.eq(Err.TOO_LONG)
        with m.Elif(count < MIN_FRAME):
            m.d.comb += status.eq(Err.LENGTH)
        with m.Elif(crc != 0):
            m.d.comb += status.eq(Err.CRC)
        with m.Elif(~length_ok):
            m.d.comb += status.eq(Err.LENGTH)
        with m.Else():
            m.d.comb += status.eq(Err.OK)

        final = Signal(3)
        m.d.comb += final.eq(Mux((status == Err.OK) & ~fifo.w_rdy, Err.OVERRUN, status))
        v = Signal(Verdict)
        # op and seq are cleared at every END, so a frame too short to hold
        # them reports 0 without a multiplexer
        m.d.comb += [v.status.eq(final), v.op.eq(op), v.seq.eq(seq),
                     v.length.eq(count - TRAILER_BYTES),
                     fifo.w_data.eq(Cat(v.status, v.op, v.seq, v.length[:lbits]))]
        m.d.sync += self.dropped.eq(0)
        with m.If(is_end):
            m.d.sync += [count.eq(0), crc.eq(CRC_INIT), esc.eq(0), seen.eq(0), bad.eq(0),
                         overrun.eq(0), op.eq(0), seq.eq(0)]
            with m.If(seen):
                m.d.comb += [self.judged.valid.eq(1), self.judged.payload.eq(final)]
                with m.If(fifo.w_rdy):
                    m.d.comb += fifo.w_en.eq(1)
                    with m.If(final == Err.OK):          # keep the frame's bytes
                        m.d.sync += fs.eq(wptr)
                with m.Else():
                    m.d.sync += self.dropped.eq(1)
        return m


class Framer(wiring.Component):
    """Wrap body bytes into a frame: ``END``, escaped body, length, CRC, ``END``.

    A frame opens with its first body byte and closes on an item with
    ``close=1``; a close with no open frame is ignored.

    Parameters
    ----------
    max_len : int
        Longest body the framer is given (sets the width of its length
        counter; the length field on the wire is always 16 bits).

    Attributes
    ----------
    inp : In(stream of TxItem)
        Taken into a register; ``ready`` is that register being empty (it
        does not depend on ``valid``), so at most one item per two clocks.
    out : Out(stream of 8 bits)
        Bytes for the UART transmitter.
    """

    def __init__(self, max_len: int = 0xFFFF):
        if not 1 <= max_len <= 0xFFFF:
            raise ValueError(f"max_len must be in 1..65535, not {max_len}")
        self.max_len = max_len
        super().__init__({"inp": In(stream.Signature(TxItem)),
                          "out": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        # The input is held in a register and ``inp.ready`` is that register
        # being empty: the sender's handshake never passes through the
        # framer's logic (one item per two clocks, far above the UART's rate).
        item = Signal(TxItem)
        full = Signal()
        take = Signal()
        m.d.comb += self.inp.ready.eq(~full)
        with m.If(self.inp.valid & ~full):
            m.d.sync += [item.eq(self.inp.payload), full.eq(1)]
        with m.If(take):
            m.d.sync += full.eq(0)
        crc = Signal(16, init=CRC_INIT)
        length = Signal(range(self.max_len + 1))
        opened = Signal()
        second = Signal(8)         # the escape code still to send after ESC
        tr = Signal(range(5))      # trailer byte being sent
        in_trailer = Signal()

        # one escaper and one CRC update, shared by body and trailer bytes
        trailer = Signal(8)
        len16 = Signal(16)
        m.d.comb += len16.eq(length)
        m.d.comb += trailer.eq(Mux(tr[1], Mux(tr[0], crc[:8], crc[8:]),
                                   Mux(tr[0], len16[8:], len16[:8])))
        byte = Signal(8)
        m.d.comb += byte.eq(Mux(in_trailer, trailer, item.data))
        needs = (byte == END) | (byte == ESC)
        crc_next = Signal(16)
        m.d.comb += crc_next.eq(crc16_next(crc, byte))

        def put():
            """Send ``byte`` escaped (the caller checks ``out.ready``)."""
            m.d.comb += [self.out.valid.eq(1), self.out.payload.eq(Mux(needs, ESC, byte))]
            with m.If(self.out.ready & needs):
                m.d.sync += second.eq(Mux(byte == END, ESC_END, ESC_ESC))

        with m.FSM():
            with m.State("IDLE"):
                with m.If(full):
                    with m.If(item.close):
                        m.d.comb += take.eq(1)
                        with m.If(opened):
                            m.next = "TRAILER"
                            m.d.sync += [tr.eq(0), in_trailer.eq(1)]
                    with m.Elif(~opened):
                        m.d.comb += [self.out.valid.eq(1), self.out.payload.eq(END)]
                        with m.If(self.out.ready):
                            m.d.sync += [opened.eq(1), crc.eq(CRC_INIT), length.eq(0)]
                    with m.Else():
                        put()
                        with m.If(self.out.ready):
                            m.d.comb += take.eq(1)
                            m.d.sync += [crc.eq(crc_next), length.eq(length + 1)]
                            with m.If(needs):
                                m.next = "SECOND"
            with m.State("SECOND"):
                m.d.comb += [self.out.valid.eq(1), self.out.payload.eq(second)]
                with m.If(self.out.ready):
                    m.next = "IDLE"
            with m.State("TRAILER"):
                put()
                with m.If(self.out.ready):
                    with m.If(~tr[1]):
                        m.d.sync += crc.eq(crc_next)
                    m.d.sync += tr.eq(tr + 1)
                    with m.If(needs):
                        m.next = "TSECOND"
                    with m.Elif(tr == 3):
                        m.next = "CLOSE"
            with m.State("TSECOND"):
                m.d.comb += [self.out.valid.eq(1), self.out.payload.eq(second)]
                with m.If(self.out.ready):
                    m.next = "TRAILER"
                    with m.If(tr == 4):
                        m.next = "CLOSE"
            with m.State("CLOSE"):
                m.d.comb += [self.out.valid.eq(1), self.out.payload.eq(END)]
                with m.If(self.out.ready):
                    m.d.sync += [opened.eq(0), in_trailer.eq(0)]
                    m.next = "IDLE"
        return m
