"""Benchmarks: a model over a dataset, per-image and aggregate metrics with their conventions."""
