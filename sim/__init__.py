"""Bit-accurate NumPy simulator of the XNOR-popcount datapath (installed as bebert.sim)."""
