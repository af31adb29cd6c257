"""CRC-16/CCITT-FALSE of the link, one byte per clock.

The update is linear over GF(2); its XOR matrix is derived here from the
protocol's Python reference :func:`neurocorex.protocol.crc16_update`, so the
gateware cannot disagree with the host about the polynomial.
"""

from amaranth.hdl import Cat, Const, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..protocol import crc16_update, CRC_INIT

__all__ = ["crc16_next", "CRC16"]


def _matrix():
    """For each output bit: (crc input bits, data input bits) it XORs."""
    rows = []
    for k in range(16):
        crc_bits = [i for i in range(16) if (crc16_update(1 << i, 0) >> k) & 1]
        data_bits = [i for i in range(8) if (crc16_update(0, 1 << i) >> k) & 1]
        rows.append((crc_bits, data_bits))
    return rows


_ROWS = _matrix()


def crc16_next(crc, data):
    """Amaranth expression: the CRC after feeding byte ``data`` to ``crc``."""
    bits = []
    for crc_bits, data_bits in _ROWS:
        terms = [crc[i] for i in crc_bits] + [data[i] for i in data_bits]
        acc = Const(0, 1)
        for t in terms:
            acc = acc ^ t
        bits.append(acc)
    return Cat(*bits)


class CRC16(wiring.Component):
    """Running CRC register.

    Attributes
    ----------
    clear : In(1)
        Restart at the initial value (takes precedence over ``en``).
    en, data : In(1), In(8)
        Feed one byte.
    crc : Out(16)
        CRC of the bytes fed since the last ``clear``.
    """

    clear: In(1)
    en: In(1)
    data: In(8)
    crc: Out(16, init=CRC_INIT)

    def elaborate(self, platform):
        m = Module()
        with m.If(self.clear):
            m.d.sync += self.crc.eq(CRC_INIT)
        with m.Elif(self.en):
            m.d.sync += self.crc.eq(crc16_next(self.crc, self.data))
        return m


