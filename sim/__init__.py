"""Simulation: the bit-exact golden model, RTL harnesses and the virtual board."""
