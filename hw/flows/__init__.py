"""The flows around the generated design: co-simulation (cosim), synthesis with Yosys (synth,
postsynth), place and route for timing (timing), the design-space exploration (dse) and its plots,
and the parallel runner they share."""
