"""Test-session setup shared by all test modules."""

import os
import tempfile

from r2i import allocator

allocator.configure()  # as the `r2i` command does: the updates' buffers are reused instead of faulted in afresh

from r2i.runtime import enable_compilation_cache  # noqa: E402 - after the allocator, before JAX starts

# JAX's persistent compilation cache, private to the test session unless R2I_CACHE_DIR says otherwise: identical
# programs (several Trainers or Agents of one config) compile once and hit the cache afterwards.
enable_compilation_cache(os.environ.get("R2I_CACHE_DIR") or tempfile.mkdtemp(prefix="r2i-test-jax-cache-"))
