"""The runner: validation, execution and result writing of experiments and sweeps."""
