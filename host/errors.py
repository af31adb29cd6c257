"""Exceptions raised by the NeuroCoreX host library.

Every user error derives from :class:`NeuroCoreXError`; the CLI prints its
message on one line and exits with status 2.
"""

__all__ = ["NeuroCoreXError", "RangeError", "ShapeError", "DeviceError",
           "LinkError", "ProtocolError", "UnsupportedError"]


class NeuroCoreXError(Exception):
    """Base class of every error the library reports to users."""


class RangeError(NeuroCoreXError, ValueError):
    """A value lies outside the range its field allows."""


class ShapeError(NeuroCoreXError, ValueError):
    """An array has the wrong shape or type."""


class DeviceError(NeuroCoreXError):
    """A device could not be opened or does not support a request."""


class LinkError(DeviceError):
    """The link to a device failed: timeout, disconnect, CRC failure."""


class ProtocolError(DeviceError):
    """The device answered a command with an error code."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


class UnsupportedError(NeuroCoreXError):
    """A network or graph uses a feature the core cannot express."""
