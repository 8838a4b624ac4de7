"""Metrics: a JSON-lines + TensorBoard logger, and an aggregator of per-update metrics and episode statistics.

Files written under `logdir`:

* `metrics.jsonl`: one JSON object per `MetricsLogger.write`, `{"step": int, "time": unix_seconds, key: float, ...}`.
  Appended to; a resumed run first rolls it back to its checkpoint (`rollback_to`), so every step is logged once
  and steps only grow. `MetricsLogger.read` reads it back.
* `tb/`: TensorBoard event files (tensorboardX) with the same scalars, and videos as animated GIF images (at each
  evaluation round of an image environment: `eval/policy`, an evaluation episode, and `eval/open_loop`, the world
  model's open-loop prediction, see `r2i.video`). On resume
  the new event file starts with a purge marker, so TensorBoard drops the old files' events after the checkpoint.

Key naming (produced by `Aggregator`): episode statistics are `<prefix>/return`, `<prefix>/length`,
`<prefix>/count` and `<prefix>/<name>` for every env key `log_<name>`, with prefix `episode` for training episodes and
`eval` for evaluation episodes (so `episode/success`, `eval/return`, ...). Per-update metrics keep the keys the caller
gives them (e.g. `model/loss`, `actor/entropy`).
"""

from __future__ import annotations

import io
import json
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

METRICS_FILE = "metrics.jsonl"
TB_DIR = "tb"  # TensorBoard event files, beside METRICS_FILE in a run directory


def to_scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """Keep the finite scalars of `metrics` (Python numbers, NumPy or JAX arrays with one element) as floats.

    Non-finite values and arrays with more than one element are dropped. JAX arrays are fetched from the device in
    one transfer.
    """
    if any(type(v).__module__.startswith("jax") for v in metrics.values()):
        import jax

        metrics = jax.device_get(dict(metrics))
    out = {}
    for key, value in metrics.items():
        try:
            array = np.asarray(value)
        except Exception:  # noqa: BLE001 - anything that is not array-like is not a scalar
            continue
        if array.size != 1 or array.dtype.kind not in "biuf":
            continue
        number = float(array.reshape(()))
        if math.isfinite(number):
            out[str(key)] = number
    return out


class MetricsLogger:
    """Writes scalars to `logdir/metrics.jsonl` and to TensorBoard (`logdir/tb`), videos to TensorBoard.

    Args:
        logdir: the run directory (created if needed).
        tensorboard: also write TensorBoard event files. Without it, `video` writes GIF files to `logdir/videos`.
    """

    def __init__(self, logdir: str | Path, tensorboard: bool = True, rollback_to: int | None = None,
                 rollback_bytes: int | None = None):
        """`rollback_to` (a resumed run: its checkpoint's step) drops what was logged after that checkpoint:
        `metrics.jsonl` is cut back to `rollback_bytes` (its size when the checkpoint was written) when given and
        plausible, else every record with a step above `rollback_to` is removed; TensorBoard is told to purge events
        from step `rollback_to + 1` on."""
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.path = self.logdir / METRICS_FILE
        self.last_step: int | None = None  # step of the latest write of this logger
        if rollback_to is not None and self.path.exists():
            self._rollback(int(rollback_to), rollback_bytes)
        # A process killed mid-write may have left a last line without its newline: start on a fresh line.
        needs_newline = False
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, "rb") as f:
                f.seek(-1, io.SEEK_END)
                needs_newline = f.read(1) != b"\n"
        self._file = open(self.path, "a", encoding="utf-8")
        if needs_newline:
            self._file.write("\n")
            self._file.flush()
        self._tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            purge = None if rollback_to is None else int(rollback_to) + 1
            self._tb = SummaryWriter(str(self.logdir / TB_DIR), purge_step=purge)

    def _rollback(self, step: int, size: int | None) -> None:
        data = self.path.read_bytes()
        if size is not None and 0 <= size <= len(data) and (size == 0 or data[size - 1 : size] == b"\n"):
            kept = data[:size]
        else:  # no recorded size (or the file was changed since): drop the records after the checkpoint's step
            lines = []
            for line in data.split(b"\n"):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
                    lines.append(line + b"\n")
            kept = b"".join(lines)
        if kept != data:
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_bytes(kept)
            tmp.replace(self.path)

    def tell(self) -> int:
        """Bytes of `metrics.jsonl` written so far (recorded in checkpoints, for `rollback_bytes`)."""
        self._file.flush()
        return self._file.tell()

    def write(self, step: int, metrics: dict[str, Any]) -> dict[str, float]:
        """Append `{"step", "time", **finite scalars of metrics}` as one line (flushed) and to TensorBoard.

        Values may be Python numbers or NumPy / JAX scalars; non-finite values and non-scalar arrays are dropped (see
        `to_scalars`). Returns the scalars written.
        """
        scalars = to_scalars(metrics)
        scalars.pop("step", None)
        scalars.pop("time", None)
        record = {"step": int(step), "time": time.time(), **scalars}
        self.last_step = int(step)
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in scalars.items():
                self._tb.add_scalar(key, value, int(step), walltime=record["time"])
            self._tb.flush()
        return scalars

    def video(self, step: int, name: str, frames: np.ndarray, fps: float = 10.0) -> Path | None:
        """Log a video: uint8 frames `(T, H, W, C)` with C in {1, 3}.

        TensorBoard's own video support (tensorboardX `add_video`) needs moviepy, a heavy dependency, so the frames are
        encoded as an animated GIF with imageio (`r2i.video.encode_gif`) and logged as a TensorBoard image summary,
        which TensorBoard shows animated in its Images tab. Without TensorBoard the GIF is written to
        `logdir/videos/<name>_<step>.gif` and that path is returned.
        """
        from r2i.video import check_frames, encode_gif

        frames = check_frames(frames)
        gif = encode_gif(frames, fps)
        if self._tb is None:
            path = self.logdir / "videos" / f"{name.replace('/', '_')}_{int(step):09d}.gif"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(gif)
            return path
        from tensorboardX.proto.summary_pb2 import Summary

        _, height, width, channels = frames.shape
        image = Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=gif)
        self._tb._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=name, image=image)]), int(step))
        self._tb.flush()
        return None

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def read(logdir: str | Path, dedupe: bool = True) -> list[dict]:
        """The records of `logdir/metrics.jsonl`, in file order.

        Lines that do not parse (the truncated last line of a killed process, which stays in the middle of the file
        once a resumed run appends after it) are skipped. With `dedupe`, when the step
        goes backwards (a run resumed from a checkpoint older than its last log line), the earlier records with a step
        >= the new one are dropped, so the result follows the resumed run. Raises FileNotFoundError without the file.
        """
        return parse_records((Path(logdir) / METRICS_FILE).read_text(encoding="utf-8"), dedupe)


def parse_records(text: str, dedupe: bool = True) -> list[dict]:
    """The records of a `metrics.jsonl`'s text, skipping lines that do not parse (see `MetricsLogger.read`)."""
    records: list[dict] = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict) or "step" not in record:
            continue
        if dedupe and records and record["step"] < records[-1]["step"]:
            records = [r for r in records if r["step"] < record["step"]]
        records.append(record)
    return records


class Aggregator:
    """Accumulates metrics over a logging interval and returns their means.

    * `add(metrics)`: per-update metrics (e.g. train losses); `result()` gives the mean of each key over the calls.
    * `add_steps(step)`: a batched env step dict `(num_envs, ...)` as in `r2i.envs.base`; episodes are tracked per
      env and, on `is_last`, recorded as by `add_episode`.
    * `add_episode(ret, length, logs)`: one finished episode. `result()` gives `<prefix>/return`, `<prefix>/length`,
      `<prefix>/count` (episodes in the interval) and `<prefix>/<name>` for each `log_<name>`, means over episodes.

    Episode length counts env steps (actions), i.e. observations - 1; the return sums the rewards of all but the first
    observation (whose reward is 0). The value of a `log_*` key for an episode is its value on the episode's last step
    (environments report episode-level results such as success there). A non-finite value there (the driver's NaN for
    an env that did not report the key at that step) counts as missing: the mean is over the episodes that reported
    it, and NaN when none did.
    """

    def __init__(self, prefix: str = "episode"):
        self.prefix = prefix
        self._sums: dict[str, float] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)
        self._episodes: list[dict[str, float]] = []
        self._ret: np.ndarray | None = None  # running return / length per env
        self._len: np.ndarray | None = None

    def add(self, metrics: dict[str, Any]) -> None:
        for key, value in to_scalars(metrics).items():
            self._sums[key] += value
            self._counts[key] += 1

    def add_episode(self, ret: float, length: int, logs: dict[str, Any] | None = None) -> None:
        episode = {"return": float(ret), "length": float(length)}
        for key, value in (logs or {}).items():
            try:
                array = np.asarray(value, np.float64)
            except (TypeError, ValueError):
                continue
            if array.size == 1:  # a non-finite value stays as NaN: reported, but missing from the mean
                number = float(array.reshape(()))
                episode[key.removeprefix("log_")] = number if math.isfinite(number) else math.nan
        self._episodes.append(episode)

    def add_steps(self, step: dict[str, np.ndarray], mask: np.ndarray | None = None) -> None:
        """Track a batched env step; with a bool `mask` `(num_envs,)`, only the envs where it is True record the
        episodes they finish (an evaluation that has its episodes counts no more of them)."""
        reward = np.asarray(step["reward"], np.float64).reshape(-1)
        first = np.asarray(step["is_first"], bool).reshape(-1)
        last = np.asarray(step["is_last"], bool).reshape(-1)
        if self._ret is None or self._ret.shape != reward.shape:
            self._ret, self._len = np.zeros_like(reward), np.zeros(reward.shape, np.int64)
        self._ret = np.where(first, 0.0, self._ret + reward)
        self._len = np.where(first, 0, self._len + 1)
        for env in np.flatnonzero(last if mask is None else last & np.asarray(mask, bool).reshape(-1)):
            logs = {k: np.asarray(v).reshape(-1)[env] for k, v in step.items() if k.startswith("log_")}
            self.add_episode(self._ret[env], int(self._len[env]), logs)

    def result(self, reset: bool = True) -> dict[str, float]:
        out = {key: self._sums[key] / self._counts[key] for key in self._sums}
        if self._episodes:
            out[f"{self.prefix}/count"] = float(len(self._episodes))
            for key in {k for episode in self._episodes for k in episode}:
                values = [e[key] for e in self._episodes if key in e and not math.isnan(e[key])]
                out[f"{self.prefix}/{key}"] = float(np.mean(values)) if values else math.nan
        if reset:
            self.reset()
        return out

    def running_state(self) -> dict:
        """The per-env running return and length of unfinished episodes (JSON-serialisable, for checkpoints)."""
        if self._ret is None:
            return {}
        return {"return": self._ret.tolist(), "length": self._len.tolist()}

    def load_running_state(self, state: dict) -> None:
        if state:
            self._ret = np.asarray(state["return"], np.float64)
            self._len = np.asarray(state["length"], np.int64)

    def reset(self) -> None:
        """Forget the interval's metrics and finished episodes (running episodes are kept)."""
        self._sums.clear()
        self._counts.clear()
        self._episodes.clear()
