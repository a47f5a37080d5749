"""Executors: the executor driver, the command executor and the process launcher they start from."""
