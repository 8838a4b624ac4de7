"""Process-level JAX setup and facts about the machine (no model code here)."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
from pathlib import Path

import jax


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache so a second process skips most of XLA's compile time.

    The directory is `$R2I_CACHE_DIR`, else `~/.cache/r2i/jax`; `R2I_NO_COMPILE_CACHE=1` turns it off (benchmarks of
    compile time). Safe to call more than once.
    """
    if os.environ.get("R2I_NO_COMPILE_CACHE"):
        return None
    path = Path(path or os.environ.get("R2I_CACHE_DIR") or Path.home() / ".cache" / "r2i" / "jax")
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description() -> str:
    """E.g. 'cpu: 2 cores, AMD EPYC ...' or 'gpu: 1 x NVIDIA H100 80GB HBM3'."""
    devices = jax.devices()
    backend = jax.default_backend()
    if backend == "cpu":
        return f"cpu: {os.cpu_count()} cores, {cpu_model()}"
    return f"{backend}: {len(devices)} x {devices[0].device_kind}"


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if platform.system() == "Darwin" else peak / 1024


def source_commit() -> str:
    """The git commit r2i's code comes from ('0123abcd45', with '+dirty' when files of the package differ from it);
    'unknown' when the package is not in a git checkout. Results record it so that a row stays attributable."""
    package = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(package), *args], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    head = git("rev-parse", "--short=10", "HEAD")
    if not head:
        return "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return head + ("+dirty" if changed else "")
