"""r2i: Recall to Imagine — DreamerV3 with an S5 state-space world model, in JAX."""

__version__ = "0.1.0"
