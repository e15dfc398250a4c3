"""Evaluation: feature extractors, statistics of features (FID, KID, IS), the MNIST classifier, reference caches,
evaluations of runs, snapshots and any two sets of digits. Imports everything below it, never the report."""
