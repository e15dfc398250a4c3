"""mnistdiff: train, sample, evaluate and report diffusion models on MNIST.

The Python API (docs/api.md): mnistdiff.load(RUN) -> Run with .sample(), .config, .metrics();
mnistdiff.train(config) -> Run; mnistdiff.fid(a, b) -> metrics; mnistdiff.to_image(images). Loaded on first use, so that
`import mnistdiff` (and the CLI's start) does not pay for torch.
"""

__version__ = "0.1.0"
__all__ = ["load", "train", "fid", "to_image", "Run"]


def __getattr__(name: str):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'mnistdiff' has no attribute {name!r}")
