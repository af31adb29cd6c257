"""Gateware of the NeuroCoreX core (Amaranth HDL)."""
