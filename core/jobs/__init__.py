"""Background work (benchmarks now, training later): one runner interface, state in the results store."""
