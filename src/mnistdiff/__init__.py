"""mnistdiff: train, sample, evaluate and report diffusion models on MNIST."""

__version__ = "0.1.0"
