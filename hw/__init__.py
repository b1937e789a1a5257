"""Amaranth accelerator, cost models and design-space exploration (installed as bebert.hw)."""
