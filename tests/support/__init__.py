"""Helpers of the tests and the benchmarks (throw-away clusters, schema snapshots): never the product."""
