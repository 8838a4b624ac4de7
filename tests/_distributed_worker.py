"""One process of the data-parallel equality check in test_distributed.py (run as a script, not collected).

    python tests/_distributed_worker.py NUM_PROCESSES PROCESS_ID PORT OUT.npz

Builds the tiny agent of the test's run (same config, spaces and batch shape as `r2i train` there, so its compiled
update is reused from the persistent cache), takes this process's rows of one fixed global batch, runs UPDATES
updates and saves the parameters (this process's copy) to OUT.npz. With NUM_PROCESSES = 1 it is the single-process
reference.
"""

import sys

import jax
import numpy as np

from r2i import distributed
from r2i.bench.common import random_batch

UPDATES = 3


if __name__ == "__main__":
    count, index, port, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    if count > 1:
        distributed.initialize(f"127.0.0.1:{port}", count, index, timeout_s=60)
    from test_distributed import TINY_RUN

    from r2i.runtime import enable_compilation_cache

    enable_compilation_cache()  # $R2I_CACHE_DIR, shared by the test's processes
    from r2i.agent import Agent
    from r2i.config import make_config
    from r2i.spaces import ActionSpace, Space

    config = make_config("tiny", TINY_RUN)
    obs_size, actions = 4, 2  # r2i:memory_length/N's observation and actions
    agent = Agent.from_config(config, {"vector": Space((obs_size,))}, ActionSpace("discrete", nvec=(actions,)))
    state = agent.init(jax.random.key(0))
    b, t = config.run.batch_size, config.run.batch_length
    rows = slice(index * b // count, (index + 1) * b // count)
    local = {k: v[rows] for k, v in random_batch(b, t, obs_size, actions, first_rate=0.2, terminal_rate=0.05).items()}
    for i in range(UPDATES):
        state, metrics = agent.train(state, agent.shard_batch(local), jax.random.key(i + 1))
    assert bool(metrics["train/finite"])
    np.savez(out, *[np.asarray(x) for x in jax.tree.leaves(distributed.host_local(state.params))])
