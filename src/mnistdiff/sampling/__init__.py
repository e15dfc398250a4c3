"""Sampling: samplers as pure functions in one registry (samplers.py), guidance, a trained net loaded from its
checkpoint, generation, runtimes. Imports the shared modules, data, processes, nets and training (checkpoints)."""
