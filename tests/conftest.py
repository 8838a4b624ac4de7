"""Test-session setup shared by all test modules."""

import os
import tempfile

import pytest
from _xla import FAST_COMPILE

# Compile fast, run slower: see tests/_xla.py. Set before JAX starts (XLA reads its flags once, when the CPU backend
# is created).
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()

# The tests compare float32 maths in different orders (the parallel scan against the step loop, a window against its
# steps) at tolerances near float32's. On a GPU, JAX's default float32 matmuls use TF32 (10-bit mantissa): on an H200
# `test_stack_sequence_equals_repeated_steps` failed at the default precision and passed at "highest". On CPU this
# changes nothing (float32 matmuls are float32 there). Training keeps JAX's default; see benchmarks/README.md "GPU".
os.environ.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "highest")

from r2i import allocator  # noqa: E402 - after XLA_FLAGS

allocator.configure()  # as the `r2i` command does: the updates' buffers are reused instead of faulted in afresh

from r2i.runtime import enable_compilation_cache  # noqa: E402 - after the allocator, before JAX starts

# JAX's persistent compilation cache, private to the test session unless R2I_CACHE_DIR says otherwise: identical
# programs (several Trainers or Agents of one config) compile once and hit the cache afterwards.
# Under pytest-xdist (`-n 2`, the README's test command) the workers of one test run share one cache directory.
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID")
_CACHE = os.path.join(tempfile.gettempdir(), f"r2i-test-jax-cache-{_RUN}") if _RUN else None
if _CACHE:
    os.makedirs(_CACHE, exist_ok=True)
enable_compilation_cache(os.environ.get("R2I_CACHE_DIR") or _CACHE or tempfile.mkdtemp(prefix="r2i-test-jax-cache-"))


# Skips that mean an environment suite went untested: a missing extra, or MuJoCo unable to render.
SUITE_SKIPS = ("not installed", "cannot render")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With R2I_NO_SKIP=1 (the CI command in the README) a suite test that skips fails: every suite's tests must run
    there. Skips about the machine itself (a tmpfs that cannot be mounted, root ignoring file permissions) stay skips."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("R2I_NO_SKIP") == "1" and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if any(marker in reason for marker in SUITE_SKIPS):
            report.outcome, report.longrepr = "failed", f"skipped, but R2I_NO_SKIP=1 forbids suite skips: {reason}"


# The README's command runs the files in two pytest-xdist workers (`--dist loadfile`): each worker takes the next file
# when it runs out of work, so the suite ends about when its slowest file ends if that file starts first, and up to
# that file's length later if it starts last (longest-processing-time-first scheduling). xdist would order the files
# by their number of tests; these go first instead, slowest first (by the slowest tests of the last CI run and the
# CPU time of single files with a cold cache). Files not listed follow in collection order.
SLOW_FILES = (
    "test_learning.py",
    "test_learning_pixels.py",
    "test_agent.py",
    "test_distributed.py",
    "test_run.py",
    "test_robust.py",
    "test_bench_gpu.py",
    "test_video.py",
)


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist loaded: keep the order set below
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = item.path.name
        return SLOW_FILES.index(name) if name in SLOW_FILES else len(SLOW_FILES)

    items.sort(key=rank)  # stable: the tests of a file and the other files keep their order

