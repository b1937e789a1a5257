"""Verilog generation: the accelerator of an artifact or a shape written out with its parameter
memories' images (images) and the files a simulator or synthesis reads (gen)."""
