"""cocotb testbenches of the accelerator, run in Verilator through bebert.hw.flows.cosim.

They live in the package, not only in tests/, because ``bebert-hw cosim`` runs them for users too.
Each reads its settings from the BEBERT_COSIM environment variable (JSON).
"""
