"""A single-port RAM clocked twice as fast, seen as a dual-port memory.

The iCE40 UP5K's SPRAM (``SB_SPRAM256KA``, 16k × 16) has one port: a
read-modify-write costs two clocks.  :class:`DoublePumpedRAM` runs the RAM in
a second clock domain at twice the core clock, phase-aligned with it (both
from one PLL), and serves one read and one write per core clock, so that the
core sees a read port and a write port that behave like those of an
:class:`~amaranth.lib.memory.Memory` with two ports.

Timing of the default ``"middle"`` schedule (core period ``P``; ``E_k`` the
core edge that starts core cycle ``k``, ``M_k = E_k + P/2`` the fast edge in
the middle of it; the ``"edge"`` schedule is described at
:class:`DoublePumpedRAM`)::

                 E_k                 M_k                 E_k+1
    core clk     _|‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾|___________________|‾‾‾‾
    fast clk     _|‾‾‾‾‾‾‾‾‾|_________|‾‾‾‾‾‾‾‾‾|_________|‾‾‾‾
    phase        ‾‾‾‾ 1: read next ‾‾‾‾|__ 0: write next ___|‾‾‾‾
    RAM addr      <  read addr of k   ><  write addr of k   ><
    RAM op                            read k              write k
    RAM out                           |<-- word read in k ---->
    data (core)                                           |<- read data of k ->

* The read address of cycle ``k`` is sampled at ``M_k`` (half a core period
  after the core registers that compute it), the RAM output is captured into
  a core-domain register at ``E_k+1`` and held until the next enabled read:
  the core gets the word one core clock after the address, as from a Memory.
* The write of cycle ``k`` is sampled at ``E_k+1``, after the read of the same
  cycle: a read and a write in one cycle return the old word, and the write
  is visible to reads from cycle ``k+1`` on (not transparent).
* The RAM output is captured *before* the write edge, so it does not matter
  whether the RAM changes its output during a write.

``t_core ^ t_fast`` (``t_core`` toggles at every core edge and ``t_fast``
copies it at every fast edge) is 1 in the first half of a core cycle and 0 in
the second, whatever the power-up state, with no reset; ``phase`` is a
fast-domain register that follows it.  Paths that cross between the domains,
and their budgets, are listed in ``docs/boards.md`` ("Double-pumped SPRAM").
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory, MemoryData, ReadPort, WritePort
from amaranth.lib.wiring import Out

__all__ = ["DoublePumpedRAM", "double_pumped_banks", "DOUBLE_PUMPED_CORE", "FAST_DOMAIN", "SCHEDULES"]

#: default name of the clock domain at twice the core clock
FAST_DOMAIN = "sync2x"

#: Core options that go with double-pumped banks (the iCEBreaker's): dual-port
#: cycles, no bank output stage (the wrapper's capture register is one), and
#: no unit input registers (those serve ECP5 block RAM timing and cost about
#: 200 logic cells on the iCE40).  The board top uses
#: ``Core(config, bank_memory=double_pumped_banks(), **DOUBLE_PUMPED_CORE)``;
#: the cycle benchmark uses the same options with plain dual-port memories.
DOUBLE_PUMPED_CORE = {"dual_port": True, "register_unit_inputs": False,
                      "register_bank_outputs": False}

#: where in the core cycle the RAM reads (see :class:`DoublePumpedRAM`)
SCHEDULES = ("middle", "edge")


class DoublePumpedRAM(wiring.Component):
    """One single-port RAM in a 2× clock domain, with a read and a write port in the core domain.

    Parameters
    ----------
    data : MemoryData
        Shape, depth and (simulation) contents of the RAM.
    granularity : int or None
        Write-enable granularity in bits (one ``write.en`` bit per lane).
    domain : str
        The core clock domain, where both ports are used.
    fast_domain : str
        The clock domain at twice the core clock, rising edges aligned with the
        core's; it needs no reset.
    attrs : dict or None
        Attributes of the RAM; by default ``{"ram_style": "huge"}``, so that
        Yosys maps it to iCE40 SPRAM (``synth_ice40 -spram``).
    schedule : str
        ``"middle"`` (default): read at the fast edge in the middle of the core
        cycle, write at the core edge, output captured in a core register; the
        read address has half a core period.  ``"edge"``: read at the core edge
        (the read address and data have a full core period, as with a plain
        single-port RAM), the write request registered there and written at the
        next middle edge; the core uses the RAM's output directly, which must
        hold through that write (Yosys maps SPRAM as holding it: ``rdwr
        no_change``; not verified on hardware).

    Members
    -------
    read : Out(ReadPort.Signature)
        ``addr``, ``en`` in; ``data`` out one core clock later, held while
        ``en`` is low (``en`` is sampled with the address).
    write : Out(WritePort.Signature)
        ``addr``, ``data``, ``en`` (one bit per lane).
    """

    def __init__(self, data: MemoryData, granularity=None, *, domain="sync",
                 fast_domain=FAST_DOMAIN, attrs=None, schedule="middle"):
        if not isinstance(data, MemoryData):
            raise TypeError(f"data must be a MemoryData, not {data!r}")
        if schedule not in SCHEDULES:
            self._MustUse__silence = True       # refused: nothing to elaborate
            raise ValueError(f"schedule must be one of {SCHEDULES}, not {schedule!r}")
        self.schedule = schedule
        self.memory_data = data
        self.granularity = granularity
        self.domain = domain
        self.fast_domain = fast_domain
        self.attrs = {"ram_style": "huge"} if attrs is None else dict(attrs)
        aw = max(0, (data.depth - 1).bit_length())
        super().__init__({
            "read": Out(ReadPort.Signature(addr_width=aw, shape=data.shape)),
            "write": Out(WritePort.Signature(addr_width=aw, shape=data.shape,
                                             granularity=granularity)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.ram = ram = Memory(self.memory_data, attrs=self.attrs)
        # one address and "read enable implies no write": the shape Yosys maps to SPRAM
        wp = ram.write_port(domain=self.fast_domain, granularity=self.granularity)
        rp = ram.read_port(domain=self.fast_domain)

        # phase: 1 in the first half of a core cycle (the next fast edge reads),
        # 0 in the second half (the next fast edge is a core edge and writes)
        # (t_core starts at 1 so that time 0 counts as a core edge: in simulation the
        # first RAM edge, half a core period in, already reads)
        t_core = Signal(init=1, reset_less=True)
        t_fast = Signal(reset_less=True)
        m.d[self.domain] += t_core.eq(~t_core)
        m.d[self.fast_domain] += t_fast.eq(t_core)
        # the RAM's controls use a flip-flop copy of the phase (one LUT less on
        # the fast clock's own paths): phase alternates, so its value after a
        # fast edge is the inverse of its value before it
        phase = Signal(init=1)
        m.d[self.fast_domain] += phase.eq(~(t_core ^ t_fast))

        r, w = self.read, self.write
        addr = Signal.like(wp.addr)
        m.d.comb += [rp.addr.eq(addr), wp.addr.eq(addr)]
        if self.schedule == "middle":
            m.d.comb += [
                addr.eq(Mux(phase, r.addr, w.addr)),
                rp.en.eq(phase & r.en),
                wp.en.eq(Mux(phase, 0, w.en)),
                wp.data.eq(w.data),
            ]
            # capture the word read at the middle edge at the next core edge, before
            # the write of the same edge can disturb the RAM's output
            held = Signal.like(rp.data, reset_less=True)
            with m.If(r.en):
                m.d[self.domain] += held.eq(rp.data)
            m.d.comb += r.data.eq(held)
        else:
            # "edge": read at the core edge that ends the cycle, the write request
            # of the cycle is taken at that edge (fast registers, enabled on the
            # core edges only) and written at the middle edge of the next cycle
            wq_addr = Signal.like(w.addr, reset_less=True)
            wq_data = Signal.like(w.data, reset_less=True)
            wq_en = Signal.like(w.en)
            with m.If(~phase):
                m.d[self.fast_domain] += [wq_addr.eq(w.addr), wq_data.eq(w.data), wq_en.eq(w.en)]
            m.d.comb += [
                addr.eq(Mux(phase, wq_addr, r.addr)),
                rp.en.eq(~phase & r.en),
                wp.en.eq(Mux(phase, wq_en, 0)),
                wp.data.eq(wq_data),
                # the RAM's own output register holds the word through the write
                r.data.eq(rp.data),
            ]
        return m


def double_pumped_banks(*, domain="sync", fast_domain=FAST_DOMAIN, attrs=None, schedule="middle"):
    """A ``bank_memory`` builder for :class:`~neurocorex.hdl.core.Core`.

    ``Core(config, dual_port=True, bank_memory=double_pumped_banks())`` puts
    every synapse bank in a :class:`DoublePumpedRAM`; the design that contains
    the core must define ``fast_domain`` at twice the core clock.
    """
    def build(data, granularity, *, poison=False):
        # (``poison`` is ignored: a read and a write of one core clock fall in
        # different fast clocks, in a fixed order; they never collide)
        bank = DoublePumpedRAM(data, granularity, domain=domain, fast_domain=fast_domain,
                               attrs=attrs, schedule=schedule)
        return bank, bank.read, bank.write
    return build
