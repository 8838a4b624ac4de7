"""r2i: Recall to Imagine — DreamerV3 with an S5 state-space world model, in JAX.

    policy = r2i.load("runs/my-run")
    carry = policy.initial(batch_size)
    carry, action = policy.act(carry, obs)
"""

__version__ = "0.1.0"


def load(logdir, step=None, mode=None, seed=0):
    """Load a trained policy from a run directory (see `r2i.api.load`; `mode` defaults to the run's run.eval_mode)."""
    from r2i.api import load as _load

    return _load(logdir, step, mode, seed)
