"""Videos: evaluation episodes and the world model's open-loop prediction, encoded with imageio.

Encoding (imageio's v3 API): GIF through its Pillow plugin (Pillow is installed with matplotlib), MP4 (H.264) through
its PyAV plugin, which needs the `video` extra (`pip install 'r2i[video]'`, PyAV ships its own FFmpeg libraries).
TensorBoard gets GIFs (see `MetricsLogger.video`), so training needs no extra.

Frames are uint8 `(T, H, W, C)`, C ∈ {1, 3}.

* `episode_grid(steps)` tiles the evaluation envs side by side, one frame per policy step (an env whose episodes are
  done shows black): what `r2i eval --video` writes.
* `open_loop(agent, params, batch, key, context)`: the world model observes the first `context` frames of replayed
  windows (posterior), then imagines the rest from the prior under the actions that were actually taken, without
  seeing those frames. Rows are windows; columns are truth | model | error, error = (model − truth + 1) / 2 (grey where
  they agree). The context frames show reconstructions, the rest predictions: whether the model keeps what it saw in
  the context (a cue, the maze layout) is visible where the prediction goes on.
"""

from __future__ import annotations

import functools
import weakref
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from r2i.errors import ConfigError, MissingExtraError

FORMATS = (".gif", ".mp4")


def check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3) or frames.dtype != np.uint8:
        raise ValueError(f"video frames must be uint8 (T, H, W, C), C in (1, 3), got {frames.dtype}{frames.shape}")
    return frames


def encode_gif(frames: np.ndarray, fps: float = 10.0) -> bytes:
    """uint8 frames `(T, H, W, C)` → animated GIF bytes (looping)."""
    import imageio.v3 as iio

    frames = check_frames(frames)
    frames = frames[..., 0] if frames.shape[-1] == 1 else frames
    return iio.imwrite("<bytes>", frames, extension=".gif", duration=max(1, round(1000 / fps)), loop=0)


def write_video(path: str | Path, frames: np.ndarray, fps: float = 10.0) -> Path:
    """Write `frames` as `.gif` or `.mp4` (by the suffix; MP4 needs PyAV, the `video` extra). Returns the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"video path {str(path)!r} must end in .gif or .mp4")
    frames = check_frames(frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".gif":
        path.write_bytes(encode_gif(frames, fps))
        return path
    try:
        import av  # noqa: F401 — imageio's pyav plugin imports it; checked here for a clear message
    except ImportError as error:
        raise MissingExtraError("writing MP4 videos", "video", "av") from error
    import imageio.v3 as iio

    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, -1)
    # H.264 in yuv420p needs even sizes; pad with black instead of scaling the pixels
    pad = ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0))
    iio.imwrite(path, np.pad(frames, pad), plugin="pyav", fps=fps, codec="h264")
    return path


def episode_grid(steps: list[np.ndarray]) -> np.ndarray:
    """Per policy step `(num_envs, H, W, C)` images → `(T, H, num_envs·W, C)`: the envs side by side."""
    if not steps:
        raise ValueError("no frames were recorded")
    stacked = np.stack(steps)  # (T, N, H, W, C)
    t, n, h, w, c = stacked.shape
    return np.ascontiguousarray(stacked.transpose(0, 2, 1, 3, 4).reshape(t, h, n * w, c))


# -------------------------------------------------------------------------------------------------------- open loop


def _open_loop(agent, params, batch: dict, key: jax.Array, context: int) -> jax.Array:
    """Decoded images `(B, T, H, W, C)` float32: posterior reconstructions for t < context, prior predictions after.

    batch: observation keys `(B, T, …)`, "action" `(B, T, A)`, "is_first" `(B, T)`; a_t is the action taken at obs_t.
    """
    wm = agent.world_model(params)
    seq = wm.seq
    b, t = batch["is_first"].shape
    ctx = {k: v[:, :context] for k, v in batch.items()}
    filter_key, imagine_key = jax.random.split(key)
    _, out = seq.filter(seq.initial(b), wm.encode(ctx), ctx["action"], ctx["is_first"], filter_key)
    state = seq.start({k: v[:, -1:] for k, v in out.items()})  # the state at the last context frame, (B, …)

    def step(state, inputs):
        action, step_key = inputs
        state = seq.imagine_step(state, action, step_key)  # s_{t+1} from s_t and a_t, prior only
        return state, (state["h"], state["z"])

    actions = jnp.swapaxes(batch["action"][:, context - 1 : t - 1], 0, 1)  # a_{context-1} … a_{T-2}: (T-context, B, A)
    keys = jax.random.split(imagine_key, t - context)
    _, (h, z) = jax.lax.scan(step, state, (actions.astype(jnp.float32), keys))
    h = jnp.concatenate([out["h"], jnp.swapaxes(h, 0, 1).astype(out["h"].dtype)], 1)
    z = jnp.concatenate([out["z"], jnp.swapaxes(z, 0, 1).astype(out["z"].dtype)], 1)
    return wm.image_decoder([h, z]).astype(jnp.float32)


_JITTED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def open_loop(agent, params, batch: dict, key: jax.Array, context: int = 5) -> np.ndarray:
    """The open-loop prediction video `(T, B·H, 3·W, C)` uint8 of replayed windows (see the module docstring).

    batch: as `Replay.sample` returns it, `(B, T, …)` with T > context ≥ 1; the env must have an image observation
    (the first image key is shown, with its channels).
    """
    wm_keys = [k for k, s in agent.obs_space.items() if s.is_image]
    if not wm_keys:
        raise ValueError("open_loop needs an image observation")
    t = batch["is_first"].shape[1]
    if not 1 <= context < t:
        raise ValueError(f"open_loop: context={context} must be in [1, {t - 1}] for windows of {t} steps")
    fn = _JITTED.setdefault(agent, jax.jit(functools.partial(_open_loop, agent), static_argnames="context"))
    inputs = {k: jnp.asarray(batch[k]) for k in (*agent.obs_keys, "action", "is_first")}
    decoded = np.asarray(fn(params, inputs, key, context=context))
    image_keys = sorted(wm_keys)  # the decoder's channels follow the sorted image keys
    first = image_keys[0]
    channels = agent.obs_space[first].shape[2]
    model = decoded[..., :channels]
    truth = np.asarray(batch[first]).astype(np.float32) / 255.0
    error = (model - truth + 1.0) / 2.0
    video = np.concatenate([truth, model, error], 3)  # (B, T, H, 3W, C)
    video = np.clip(video * 255.0 + 0.5, 0, 255).astype(np.uint8)
    b, t, h, w, c = video.shape
    return np.ascontiguousarray(video.transpose(1, 0, 2, 3, 4).reshape(t, b * h, w, c))


MAX_EVAL_FRAMES = 500  # per evaluation round in TensorBoard: a GIF of a few MB at most
OPEN_LOOP_ROWS, OPEN_LOOP_STEPS = 4, 64


def log_eval_videos(logger, step: int, frames: list[np.ndarray], agent, params, replay, seed: int) -> None:
    """TensorBoard videos of one evaluation round: `eval/policy` (the evaluation envs side by side, at most
    `MAX_EVAL_FRAMES` policy steps) and `eval/open_loop` (4 replayed windows of at most 64 steps: the model sees the
    first quarter, then imagines the rest under the actions taken). The windows are drawn with a generator of their
    own, so the replay's training draws do not change."""
    logger.video(step, "eval/policy", episode_grid(frames[:MAX_EVAL_FRAMES]))
    if not replay.ready(1):
        return
    batch = replay.sample(OPEN_LOOP_ROWS, rng=np.random.default_rng([seed, step]))
    steps = min(OPEN_LOOP_STEPS, batch["is_first"].shape[1])
    if steps < 2:
        return
    batch = {k: v[:, :steps] for k, v in batch.items()}
    video = open_loop(agent, params, batch, jax.random.key(step), context=max(1, steps // 4))
    logger.video(step, "eval/open_loop", video)
