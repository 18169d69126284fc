"""Benchmarks (not part of the product)."""
