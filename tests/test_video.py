"""Videos: GIF / MP4 encoding with imageio, the evaluation grid, and the world model's open-loop prediction."""

import json

import imageio.v3 as iio
import jax
import numpy as np
import pytest

from r2i import config as cfgmod
from r2i.errors import ConfigError
from r2i.video import OPEN_LOOP_ROWS, encode_gif, episode_grid, open_loop, write_video


def blocks(t=5, h=16, w=24):
    """Frames of flat colour blocks (exact through a GIF palette and nearly so through H.264)."""
    frames = np.zeros((t, h, w, 3), np.uint8)
    for i in range(t):
        frames[i, :, : w // 2] = (40 * i, 0, 255 - 40 * i)
        frames[i, :, w // 2 :] = (0, 200, 40 * i)
    return frames


def test_gif_and_mp4_round_trip(tmp_path):
    frames = blocks()
    np.testing.assert_array_equal(iio.imread(encode_gif(frames), extension=".gif", index=None)[..., :3], frames)
    gif = write_video(tmp_path / "a" / "ep.gif", frames[..., :1])  # grey frames too
    assert iio.imread(gif, index=None).shape[:3] == (5, 16, 24)
    mp4 = write_video(tmp_path / "ep.mp4", blocks(h=15), fps=10)  # odd height: padded to even for H.264
    back = iio.imread(mp4, plugin="pyav")
    assert back.shape == (5, 16, 24, 3)
    assert np.abs(back[:, :15].astype(int) - blocks(h=15)).mean() < 8  # lossy, but the same picture
    with pytest.raises(ConfigError, match=r"\.gif or \.mp4"):
        write_video(tmp_path / "ep.avi", frames)


def test_episode_grid_puts_envs_side_by_side():
    steps = [np.stack([np.full((4, 4, 3), 10 * t + e, np.uint8) for e in range(3)]) for t in range(2)]
    grid = episode_grid(steps)
    assert grid.shape == (2, 4, 12, 3) and grid[1, 0, 4, 0] == 11 and grid[0, 3, 11, 0] == 2


# The `tiny` preset (2 envs, windows of 8 steps) on an image task.
TINY_IMAGE = {
    "env.id": "r2i:memory_length/6", "env.options": "{image: true}", "run.train_ratio": 1, "run.log_every": 1000,
    # prefill up to the evaluation round at env step 40 (2 + 38) and stop there: no update is compiled (an image agent's
    # first compilations cost tens of seconds on 2 cores), the round still logs both videos
    "run.prefill": 40, "run.steps": 40, "run.eval_every": 38, "run.eval_episodes": 2, "replay.capacity": 1000,
}  # fmt: skip


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    from r2i.run import Trainer

    logdir = tmp_path_factory.mktemp("image_run")
    trainer = Trainer(cfgmod.make_config("tiny", {**TINY_IMAGE, "logdir": str(logdir)}), quiet=True)
    result = trainer.run()
    yield trainer, result
    trainer.close()


def tensorboard_images(logdir) -> dict[str, list]:
    """tag → image summaries of the TensorBoard event files (TFRecords: length, CRC, Event proto, CRC)."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    images: dict[str, list] = {}
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        while data:
            (length,) = struct.unpack("<Q", data[:8])
            event = Event.FromString(data[12 : 12 + length])
            data = data[16 + length :]
            for value in event.summary.value:
                if value.HasField("image"):
                    images.setdefault(value.tag, []).append((event.step, value.image))
    return images


def test_each_evaluation_round_logs_the_episodes_and_the_open_loop_prediction(image_run):
    trainer, result = image_run
    from r2i.metrics import MetricsLogger

    evaluated = [r for r in MetricsLogger.read(trainer.logdir) if "eval/episodes" in r]
    assert [(r["step"], r["eval/episodes"]) for r in evaluated] == [(40, 2)] and trainer.counters.updates == 0
    images = tensorboard_images(trainer.logdir / "tb")
    assert set(images) == {"eval/policy", "eval/open_loop"}
    step, policy = images["eval/policy"][-1]
    assert step == 40 and (policy.width, policy.height) == (2 * 64, 64)  # the two eval envs side by side
    frames = iio.imread(policy.encoded_image_string, extension=".gif", index=None)
    assert len(frames) == 8  # one episode per env: 8 observations
    _, loop = images["eval/open_loop"][-1]
    assert (loop.width, loop.height) == (3 * 64, 4 * 64)  # truth | model | error, 4 replayed windows
    frames = iio.imread(loop.encoded_image_string, extension=".gif", index=None)
    assert len(frames) == trainer.config.run.batch_length


def test_open_loop_imagines_without_the_later_frames(image_run):
    trainer, _ = image_run
    agent, params = trainer.agent, trainer.state.params
    rng = np.random.default_rng(0)
    # The evaluation round's shapes (4 windows of batch_length steps, context T // 4): its compiled program is reused.
    b, t = OPEN_LOOP_ROWS, trainer.config.run.batch_length
    context = t // 4
    batch = {
        "image": rng.integers(0, 256, (b, t, 64, 64, 3), dtype=np.uint8),
        "action": np.eye(2, dtype=np.float32)[rng.integers(0, 2, (b, t))],
        "is_first": np.zeros((b, t), bool),
    }
    video = open_loop(agent, params, batch, jax.random.key(1), context=context)
    assert video.shape == (t, b * 64, 3 * 64, 3) and video.dtype == np.uint8
    np.testing.assert_array_equal(video[:, :64, :64], batch["image"][0])  # the truth column
    later = {**batch, "image": batch["image"].copy()}
    later["image"][:, context:] = 0  # the frames the model must not see
    np.testing.assert_array_equal(open_loop(agent, params, later, jax.random.key(1), context)[:, :, 64:128],
                                  video[:, :, 64:128])
    earlier = {**batch, "image": batch["image"].copy()}
    earlier["image"][:, 0] = 0  # a context frame: the prediction changes
    assert not np.array_equal(open_loop(agent, params, earlier, jax.random.key(1), context)[context:, :, 64:128],
                              video[context:, :, 64:128])
    with pytest.raises(ValueError, match="context"):
        open_loop(agent, params, batch, jax.random.key(1), context=t)


def test_eval_writes_the_episodes_as_mp4_and_gif(image_run, tmp_path, capsys):
    from r2i import cli

    trainer, _ = image_run
    for name in ("eval.mp4", "eval.gif"):
        assert cli.main(["eval", "--logdir", str(trainer.logdir), "--episodes", "3", "--video", str(tmp_path / name)]) == 0
        result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        frames = iio.imread(result["video"], index=None) if name.endswith(".gif") else iio.imread(result["video"], plugin="pyav")
        # 3 episodes in 2 envs: env 0 runs two of them back to back (8 observations each), env 1 one, then black
        assert result["eval/episodes"] == 3 and frames.shape[:3] == (16, 64, 128)
        assert frames[-2, :, 64:].max() < 10 and frames[-2, 60, :64].min() > 200  # env 1 done (black), env 0 queried
    assert cli.main(["eval", "--logdir", str(trainer.logdir), "--video", str(tmp_path / "x.avi")]) == 2
