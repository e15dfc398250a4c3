"""Training: the loop (loop.py) with exact resume, its epoch hooks' contract, the optimiser and EMA, several processes
(dist.py), the run directory and checkpoints. Imports the shared modules, data, processes and nets only."""
