"""Videos: GIF / MP4 encoding with imageio, the evaluation grid, and the world model's open-loop prediction."""

import imageio.v3 as iio
import jax
import numpy as np
import pytest

from r2i import config as cfgmod
from r2i.agent import Agent
from r2i.envs import make_env
from r2i.errors import ConfigError
from r2i.video import encode_gif, episode_grid, open_loop, write_video


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


TINY_IMAGE = {
    "model.deter": 16, "model.hidden": 16, "model.stoch": 4, "model.classes": 4, "model.cnn_depth": 2,
    "model.ssm.units": 16, "model.ssm.state": 8, "model.ssm.blocks": 2, "model.ssm.layers": 1,
    "model.encoder.units": 16, "model.decoder.units": 16, "model.reward_head.units": 16, "model.cont_head.units": 16,
    "behavior.actor.units": 16, "behavior.critic.units": 16,
}  # fmt: skip


@pytest.mark.parametrize("sequence", ["s3m", "gru"])
def test_open_loop_imagines_without_the_later_frames(sequence):
    env = make_env("r2i:memory_length/6", seed=0, image=True)
    config = cfgmod.make_config("default", {**TINY_IMAGE, "model.sequence": sequence})
    agent = Agent.from_config(config, env.obs_space, env.act_space)
    params = agent.init(jax.random.key(0)).params
    rng = np.random.default_rng(0)
    b, t, context = 2, 8, 3
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
