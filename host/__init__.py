"""NeuroCoreX: an FPGA neuromorphic emulator and its Python host toolchain.

Build a :class:`Network`, open a device with :func:`connect` (``"model"``,
``"rtl"``, a serial port or a URL), ``load`` the network and ``run`` it.
"""

__version__ = "0.1.0"

from .errors import (NeuroCoreXError, RangeError, ShapeError, DeviceError, LinkError,
                     ProtocolError, UnsupportedError)
from .formats import CoreConfig
from .network import Network, STDPSettings, alpha_from_tau, tau_from_alpha
from .device import connect, Device, Recording

__all__ = ["Network", "STDPSettings", "connect", "Device", "Recording", "CoreConfig",
           "alpha_from_tau", "tau_from_alpha", "NeuroCoreXError", "RangeError", "ShapeError",
           "DeviceError", "LinkError", "ProtocolError", "UnsupportedError", "__version__"]
