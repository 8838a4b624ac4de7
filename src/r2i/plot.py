"""Plots of training runs (`metrics.jsonl`) and of benchmark sweeps (CSV), written as PNG files.

Uses matplotlib's object API with the Agg canvas, so importing this module changes no global backend.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from r2i.errors import ConfigError
from r2i.metrics import METRICS_FILE, MetricsLogger

DEFAULT_KEYS = ("episode/return", "episode/success", "eval/return", "eval/success")
# The columns plot_sweep reads; r2i.sweep writes these and the commit each run was trained with.
SWEEP_COLUMNS = ("suite", "setting", "model", "seed", "env_steps", "success", "wall_s")


def _figure(n: int, width: float = 5.0, height: float = 3.5):
    from matplotlib.figure import Figure

    cols = min(n, 3)
    rows = -(-n // cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).reshape(-1)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def smooth_ema(y: np.ndarray, weight: float) -> np.ndarray:
    """Debiased exponential moving average (as TensorBoard's smoothing slider); weight 0 returns y unchanged."""
    if weight <= 0:
        return y
    out, mean, norm = np.empty(len(y)), 0.0, 0.0
    for i, value in enumerate(y):
        mean = weight * mean + (1 - weight) * value
        norm = weight * norm + (1 - weight)
        out[i] = mean / norm
    return out


def plot_runs(
    run_dirs: list[str | Path],
    out: str | Path,
    x: str = "step",
    keys: list[str] | None = None,
    smooth: float = 0.0,
) -> Path:
    """One subplot per key, one line per run (labelled with the run directory's name), written to the PNG `out`.

    Args:
        run_dirs: run directories, each holding a `metrics.jsonl`.
        out: PNG path to write (parent directories are created).
        x: the record field on the x axis, e.g. `step`; `time` is shown as hours since the run's first record.
        keys: metric keys to plot; default: those of `DEFAULT_KEYS` present in any run.
        smooth: EMA weight in [0, 1) applied to each line (0: raw values).
    Returns the path written. Raises ValueError for a run without metrics.jsonl or when no requested key is present.
    """
    if not run_dirs:
        raise ConfigError("plot_runs: no run directories given")
    if not 0 <= smooth < 1:
        raise ConfigError(f"plot_runs: smooth must be in [0, 1), got {smooth}")
    runs = {}
    for run in map(Path, run_dirs):
        if not (run / METRICS_FILE).is_file():
            raise ConfigError(f"plot_runs: {run / METRICS_FILE} does not exist; is {run} a run directory?")
        runs[run] = MetricsLogger.read(run)
    present = {key for records in runs.values() for record in records for key in record}
    if keys is None:
        keys = [key for key in DEFAULT_KEYS if key in present]
        if not keys:
            raise ConfigError(
                f"plot_runs: none of the default keys {list(DEFAULT_KEYS)} is in the runs; "
                f"pass keys= from {sorted(present - {'step', 'time'})}"
            )
    missing = [key for key in keys if key not in present]
    if missing:
        raise ConfigError(f"plot_runs: keys {missing} are in no run; present: {sorted(present - {'step', 'time'})}")
    if x not in present:
        raise ConfigError(f"plot_runs: x={x!r} is in no record; present: {sorted(present)}")
    fig, axes = _figure(len(keys))
    for ax, key in zip(axes, keys):
        for run, records in runs.items():
            points = np.array([(r[x], r[key]) for r in records if x in r and key in r], np.float64).reshape(-1, 2)
            if not len(points):
                continue
            points = points[np.argsort(points[:, 0], kind="stable")]
            xs = points[:, 0]
            if x == "time":
                xs = (xs - xs[0]) / 3600
            # Sparse curves (evaluation rounds; a single point draws no line at all) get markers to be visible.
            marker = "o" if len(xs) <= 30 else None
            ax.plot(xs, smooth_ema(points[:, 1], smooth), label=run.name, linewidth=1.2, marker=marker, markersize=4)
        ax.set_title(key)
        ax.set_xlabel("hours" if x == "time" else x)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=100)
    return out


SWEEP_AXIS = {"memory_len": "memory length (steps)", "discounting_chain": "delay of the bonus chain (steps)",
              "popgym": "environment"}
SWEEP_METRIC = {"memory_len": "success (correct answers)", "discounting_chain": "chose the bonus chain",
                "popgym": "normalised return"}


# Published success rates drawn beside a sweep's own results (hollow markers, dashed), as (setting, value) points.
# Values marked ≈ in docs/design.md §9 were read off the papers' figures: R2I and DreamerV3 on BSuite memory_len and
# discounting_chain (Samsami et al., ICLR 2024, Fig. 3), and a model-free S5 agent (S5 + A2C; Lu et al., NeurIPS 2023),
# which keeps 1.0 up to 512 memory steps and 0.5 at 1,024. No world-model agent has published a result past 101.
PUBLISHED: dict[str, dict[str, tuple[tuple[float, float], ...]]] = {
    "memory_len": {
        "R2I (published)": ((18, 0.98), (21, 0.97), (31, 0.97), (51, 0.93), (91, 0.81), (101, 0.0)),
        "DreamerV3 (published)": ((18, 0.98), (21, 0.03), (31, 0.03), (51, 0.0), (91, 0.0), (101, 0.0)),
        "S5 + A2C, model-free (published)": ((512, 1.0), (1024, 0.5)),
    },
    "discounting_chain": {"R2I (published)": ((30, 0.66),), "DreamerV3 (published)": ((30, 0.0),)},
}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def add_ticks(ticks: list[float], extra: list[float], min_ratio: float = 1.15) -> list[float]:
    """`ticks` plus those of `extra` that are not within a factor `min_ratio` of a tick already there (on the log
    axes of the sweeps, 100 and 101 would print on top of each other), sorted."""
    out = sorted(set(ticks))
    for t in extra:
        if all(max(t, u) / min(t, u) >= min_ratio for u in out if t > 0 and u > 0):
            out = sorted(set(out) | {t})
    return out


def _read_sweep(csv_path: Path) -> list[dict]:
    if not csv_path.is_file():
        raise ConfigError(f"plot_sweep: {csv_path} does not exist")
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in SWEEP_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(f"plot_sweep: {csv_path} lacks columns {missing} (needs {','.join(SWEEP_COLUMNS)})")
        rows = list(reader)
    if not rows:
        raise ConfigError(f"plot_sweep: {csv_path} has no rows")
    return rows


LINE_MARKERS = ("o", "s", "D", "v", "P", "X")  # the sweep figure's lines, in order; published points are hollow


def sweep_table(paths: list[Path]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """suite -> line -> setting -> success over seeds, from sweep CSVs; a line is a model, or with several CSVs
    `model · CSV name`. Settings are numbers (memory lengths, delays) or names (POPGym environments)."""
    if not paths:
        raise ConfigError("plot_sweep: no CSV given")
    table: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for path in paths:
        for line, row in enumerate(_read_sweep(path), start=2):
            try:
                success = float(row["success"])
            except ValueError:
                raise ConfigError(f"plot_sweep: {path}:{line}: success must be a number, got {row['success']!r}"
                                  ) from None
            if not row["setting"]:
                raise ConfigError(f"plot_sweep: {path}:{line}: empty setting")
            name = row["model"] if len(paths) == 1 else f"{row['model']} · {path.stem}"
            table[row["suite"]][name][row["setting"]].append(success)
    return table


def plot_sweep(csv_path: str | Path | list, out: str | Path, published: bool = True) -> Path:
    """Success vs. setting per suite from a sweep CSV, like the R2I paper's BSuite memory figure.

    The CSV has columns `suite,setting,model,seed,env_steps,success,wall_s` (extra columns are ignored). One subplot
    per suite; x = setting (numeric, e.g. memory length or delay, log scale when the settings span a factor >= 16;
    or categorical, e.g. POPGym environment names); one line per model: the mean success over seeds,
    with a band from the minimum to the maximum over seeds. Several CSVs (a list; e.g. the same suite at two
    settings of the agent) draw one line per model and CSV, labelled `model · CSV name`. With `published`, the
    published results of `PUBLISHED` for the suite are drawn beside them (hollow markers, dashed lines). Returns the
    PNG path written.
    """
    paths = [Path(p) for p in csv_path] if isinstance(csv_path, (list, tuple)) else [Path(csv_path)]
    table = sweep_table(paths)
    fig, axes = _figure(len(table), width=9.0)
    for ax, suite in zip(axes, sorted(table)):
        names = sorted({s for by_setting in table[suite].values() for s in by_setting})
        numeric = all(_is_number(s) for s in names)
        names.sort(key=float if numeric else str)
        position = {s: (float(s) if numeric else i) for i, s in enumerate(names)}
        for index, model in enumerate(sorted(table[suite])):
            by_setting = table[suite][model]
            settings = [s for s in names if s in by_setting]
            xs = np.array([position[s] for s in settings])
            values = [np.array(by_setting[s]) for s in settings]
            mean = np.array([v.mean() for v in values])
            counts = sorted({len(v) for v in values})
            seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
            # Each line a smaller marker of its own shape, so that lines meeting at a point (two models both at 1.0)
            # still show every one of them there.
            (line,) = ax.plot(xs, mean, marker=LINE_MARKERS[index % len(LINE_MARKERS)],
                              markersize=max(4.0, 10.0 - 1.5 * index),
                              label=f"{model} ({seeds} seed{'' if seeds == '1' else 's'} per point)")
            low, high = np.array([v.min() for v in values]), np.array([v.max() for v in values])
            ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        ticks = [position[s] for s in names]
        if published and numeric:
            for (label, points), style in zip(PUBLISHED.get(suite, {}).items(), ("s", "^", "D")):
                px, py = zip(*points)
                ax.plot(px, py, linestyle="--", marker=style, markerfacecolor="none", color="grey", alpha=0.8,
                        linewidth=1, label=label)
                ticks = add_ticks(ticks, [float(px[0]), float(px[-1])])
        if numeric and ticks[0] > 0 and ticks[-1] / ticks[0] >= 16:  # e.g. memory lengths 1 ... 100: log axis
            ax.set_xscale("log")
            ax.minorticks_off()
        labels = [f"{t:g}" for t in ticks] if numeric else names
        ax.set_xticks(ticks, labels, rotation=0 if numeric else 20)
        ax.set_title(suite)
        ax.set_xlabel(SWEEP_AXIS.get(suite, "setting"))
        ax.set_ylabel(SWEEP_METRIC.get(suite, "success"))
        if suite in SWEEP_METRIC:
            ax.set_ylim(-1.05 if suite == "popgym" else -0.02, 1.05)
        ax.grid(alpha=0.3)
        # Beside the axes, not over them: inside, the legend covered the longest lengths, where the lines end.
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=100)
    return out
