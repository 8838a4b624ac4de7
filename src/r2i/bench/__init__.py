"""Benchmarks (`r2i bench ...`): JSON lines with device, sizes, median time after warm-up and compile time."""
