"""The agent: parameters, optimisers and the two pure, jitted functions of acting and learning.

    state = agent.init(key)                                   # TrainState
    carry = agent.initial(num_envs)                           # recurrent state for acting
    carry, action = agent.act(state.params, carry, obs, key)  # (carry, out), the order of jax.lax.scan
    state, metrics = agent.train(state, batch, key)           # donates `state`

Parameter groups (one optimiser each, see `make_optimizer`): "model" (world model without the SSM maths), "ssm"
(Λ, B̃, C̃, D, log Δ, x_init: no weight decay), "actor", "critic". One loss, the sum of the world-model, actor and
critic losses, is differentiated once; stop-gradients make each loss reach only its own group (tests check this).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from r2i import distributed
from r2i.behavior import Actor, Critic, imagination_losses, imagine
from r2i.config import BehaviorConfig, ModelConfig, OptimConfig
from r2i.dists import sg
from r2i.errors import ConfigError
from r2i.schema import ACT_MODES
from r2i.spaces import ActionSpace, Space
from r2i.ssm import SSMParam
from r2i.worldmodel import WorldModel, uncut_steps

GROUPS = ("model", "ssm", "actor", "critic")


@struct.dataclass
class TrainState:
    """Everything `train` updates. params: {"model", "ssm", "actor", "critic"} → nnx.State."""

    params: dict
    slow_critic: Any
    opt_state: Any
    retnorm: jax.Array  # (2,) float32 EMA of the low / high return percentiles
    step: jax.Array  # () int32 updates done


def check_batch_divides(batch_size: int, devices: int) -> None:
    """Data parallelism splits the batch along B over the devices, so B must be a multiple of their count."""
    if batch_size % devices:
        raise ConfigError(
            f"run.batch_size={batch_size} is not divisible by the {devices} devices; set run.batch_size to a "
            f"multiple of {devices}"
        )


def resolve_dtype(name: str):
    if name == "auto":
        return jnp.float32 if jax.default_backend() == "cpu" else jnp.bfloat16
    return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[name]


def _decay_mask(params) -> Any:
    """True for kernels (weight decay applies), False for biases and norm scales (and the masked-out groups)."""
    return jax.tree_util.tree_map_with_path(lambda path, _: "kernel" in jax.tree_util.keystr(path), params)


# The SSM parameters by kind (attribute names in r2i.ssm.S5Layer): the official R2I code gives each kind its own optax
# chain (configs.yaml: model_opt_group_keys.group1 'Lambda_re|Lambda_im|B|C|D|log_step'; jaxutils.Optimizer labels
# parameters by their name), so each is clipped by its own global norm over all layers. The learned x_init is a model
# parameter there ('initial_hidden').
SSM_KINDS = {"lam_re": "lam_re", "lam_im": "lam_im", "b_re": "b", "b_im": "b", "c_re": "c", "c_im": "c", "d": "d",
             "log_step": "log_step"}


def _ssm_clip_labels(params) -> Any:
    """Clip labels per leaf for optim.ssm_clip='per_kind': 'ssm_<kind>' for the SSM maths, 'model' for x_init."""

    def label(path, _):
        names = [getattr(k, "key", getattr(k, "name", None)) for k in path]
        kind = next((SSM_KINDS[n] for n in reversed(names) if isinstance(n, str) and n in SSM_KINDS), None)
        return f"ssm_{kind}" if kind else "model"

    return {g: jax.tree_util.tree_map_with_path(label, v) if g == "ssm" else jax.tree.map(lambda _, g=g: g, v)
            for g, v in params.items()}


def make_clip(cfg: OptimConfig) -> optax.GradientTransformation:
    """Global-norm clipping per optimiser: world model, actor, critic; the SSM parameters inside the world model's norm
    (optim.ssm_clip='model') or each SSM kind by its own norm at model_clip ('per_kind', the official R2I code)."""
    clips = {
        "model": optax.clip_by_global_norm(cfg.model_clip),
        "actor": optax.clip_by_global_norm(cfg.actor_clip),
        "critic": optax.clip_by_global_norm(cfg.critic_clip),
    }
    if cfg.ssm_clip == "per_kind":
        clips.update({f"ssm_{k}": optax.clip_by_global_norm(cfg.model_clip) for k in set(SSM_KINDS.values())})
        return optax.multi_transform(clips, _ssm_clip_labels)
    return optax.multi_transform(clips, {"model": "model", "ssm": "model", "actor": "actor", "critic": "critic"})


def make_optimizer(cfg: OptimConfig) -> optax.GradientTransformation:
    """`make_clip`, then Adam per group (decoupled weight decay on the world model's kernels)."""

    def adam(lr, eps, decay=0.0, mask=None, warmup=0):
        parts = [optax.scale_by_adam(eps=eps)]
        if decay:  # decoupled (AdamW): the step is lr · (adam direction + decay · θ)
            parts.append(optax.add_decayed_weights(decay, mask=mask))
        # Without a warmup the plain scale keeps the optimiser state (and so old checkpoints) as it was.
        parts.append(optax.scale_by_schedule(optax.linear_schedule(0.0, -lr, warmup)) if warmup
                     else optax.scale(-lr))
        return optax.chain(*parts)

    update = optax.multi_transform(
        {
            "model": adam(cfg.model_lr, cfg.model_eps, cfg.weight_decay, _decay_mask),
            "ssm": adam(cfg.ssm_lr or cfg.model_lr, cfg.model_eps),
            "actor": adam(cfg.actor_lr, cfg.ac_eps, warmup=cfg.actor_warmup),
            "critic": adam(cfg.critic_lr, cfg.ac_eps),
        },
        {g: g for g in GROUPS},
    )
    return optax.chain(make_clip(cfg), update)


class Agent:
    """R2I / DreamerV3 agent for one observation and action space.

    Args:
      model, behavior, optim: configuration sections.
      obs_space: observation keys the agent reads (vectors and 64×64 images).
      act_space: discrete (one or more categoricals) or continuous.
    """

    def __init__(
        self,
        model: ModelConfig,
        behavior: BehaviorConfig,
        optim: OptimConfig,
        obs_space: dict[str, Space],
        act_space: ActionSpace,
    ):
        self.model_cfg, self.behavior_cfg, self.optim_cfg = model, behavior, optim
        self.obs_space, self.act_space = dict(obs_space), act_space
        self.obs_keys = tuple(sorted(obs_space))
        self.dtype = resolve_dtype(model.dtype)
        self.policy_inputs = model.policy_inputs
        wm, actor, critic = nnx.eval_shape(lambda: self._build(jax.random.key(0)))
        self.wm_graph = nnx.split(wm, SSMParam, nnx.Param)[0]
        self.actor_graph = nnx.split(actor)[0]
        self.critic_graph = nnx.split(critic)[0]
        self.feature_size = wm.seq.feature_size(self.policy_inputs)
        self._abstract_seq = wm.seq  # its `initial` needs only sizes
        self.tx = make_optimizer(optim)
        self.devices = jax.devices()
        self.mesh = Mesh(np.array(self.devices), ("data",)) if len(self.devices) > 1 else None
        self.train = jax.jit(self._train, donate_argnums=0)
        # `act` runs this jitted step on exactly the inputs the agent reads (benchmarks lower it directly).
        self.act_step = jax.jit(self._act_step, static_argnames="mode")
        self.loss_terms = jax.jit(self._loss_terms)

    @classmethod
    def from_config(cls, config, obs_space: dict[str, Space], act_space: ActionSpace) -> Agent:
        return cls(config.model, config.behavior, config.optim, obs_space, act_space)

    # -- construction --------------------------------------------------------------------------------------------------

    def _build(self, key):
        rngs = nnx.Rngs(key)
        wm = WorldModel(self.model_cfg, self.obs_space, self.act_space, dtype=self.dtype, rngs=rngs)
        size = wm.seq.feature_size(self.policy_inputs)
        actor = Actor(size, self.act_space, self.behavior_cfg, dtype=self.dtype, rngs=rngs)
        critic = Critic(size, self.model_cfg.reward_bins, self.behavior_cfg, dtype=self.dtype, rngs=rngs)
        return wm, actor, critic

    @staticmethod
    def _split(wm, actor, critic) -> dict:
        _, ssm, model, rest = nnx.split(wm, SSMParam, nnx.Param, ...)
        assert not jax.tree.leaves(rest), f"world model holds non-parameter state: {rest}"
        return {"model": model, "ssm": ssm, "actor": nnx.state(actor), "critic": nnx.state(critic)}

    def init(self, key: jax.Array) -> TrainState:
        """Fresh parameters, optimiser states, slow critic = critic, return-normaliser state zeros."""
        state = self._init(key)
        return self.replicate(state)

    @functools.partial(jax.jit, static_argnums=0)
    def _init(self, key: jax.Array) -> TrainState:
        # Jitted: building the modules op by op in Python took seconds (the image encoder most).
        params = self._split(*self._build(key))
        return TrainState(
            params=params,
            slow_critic=jax.tree.map(jnp.copy, params["critic"]),
            opt_state=self.tx.init(params),
            retnorm=jnp.zeros((2,), jnp.float32),
            step=jnp.zeros((), jnp.int32),
        )

    def abstract_state(self) -> TrainState:
        """Shapes, dtypes and shardings of a TrainState (for restoring checkpoints)."""
        shapes = jax.eval_shape(self._init, jax.random.key(0))
        if self.mesh is None:
            return shapes
        sharding = NamedSharding(self.mesh, PartitionSpec())
        return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)

    def num_params(self, state: TrainState) -> dict[str, int]:
        return {g: int(sum(x.size for x in jax.tree.leaves(state.params[g]))) for g in GROUPS}

    def world_model(self, params: dict) -> WorldModel:
        return nnx.merge(self.wm_graph, params["ssm"], params["model"])

    def actor(self, params: dict) -> Actor:
        return nnx.merge(self.actor_graph, params["actor"])

    def critic(self, critic_params) -> Critic:
        return nnx.merge(self.critic_graph, critic_params)

    # -- devices -------------------------------------------------------------------------------------------------------

    def replicate(self, tree):
        if self.mesh is None:
            return tree
        return self._put(tree, NamedSharding(self.mesh, PartitionSpec()))

    def shard_batch(self, batch: dict) -> dict:
        """Split the batch over devices along B (data parallelism); B must be divisible by the device count.

        With several processes, `batch` is this process's share (B / P rows) of the global batch.
        """
        if self.mesh is None:
            return batch
        check_batch_divides(batch["is_first"].shape[0] * jax.process_count(), len(self.devices))
        return self._put(batch, NamedSharding(self.mesh, PartitionSpec("data")))

    @staticmethod
    def _put(tree, sharding):
        if jax.process_count() == 1:
            return jax.device_put(tree, sharding)
        # Each process supplies its own rows (or, replicated, the whole value it holds): no cross-process transfer.
        return jax.tree.map(lambda x: x if getattr(x, "sharding", None) == sharding
                            else jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)

    # -- acting --------------------------------------------------------------------------------------------------------

    def initial(self, batch: int) -> dict:
        """Acting carry for `batch` environments (sequence-model carry: previous z, a and recurrent state)."""
        return self._abstract_seq.initial(batch)

    def _act_step(self, params, carry, obs, key, mode="sample"):
        """obs: observation keys (N, …) and "is_first" (N,) → new carry, action (N, A) float32."""
        wm, actor = self.world_model(params), self.actor(params)
        k_obs, k_act = jax.random.split(key)
        carry, state = wm.seq.filter_step(carry, wm.encode(obs), obs["is_first"], k_obs, sample=mode != "deterministic")
        action, _, _ = actor(wm.seq.policy_features(state, self.policy_inputs), k_act,
                             "sample" if mode == "sample" else "greedy")
        # The straight-through sample is a one-hot only up to rounding; the env and the replay get an exact one.
        # Continuous actions: the actor's a·sg(1/max(1, |a|)) is clip(a) up to rounding; clip exactly for the env.
        action = jnp.round(action) if self.act_space.discrete else jnp.clip(action.astype(jnp.float32), -1.0, 1.0)
        return {**carry, "a": action}, action

    def act(self, params, carry, obs: dict, key, mode: str = "sample"):
        """One policy step for N environments: obs (a step dict, N rows; extra keys such as reward or log_… are not
        passed on) → (new carry, action (N, A) float32). mode (see `ACT_MODES`): 'sample' draws the latent and the action
        (training); 'greedy' draws the latent and takes the most likely action (DreamerV3's evaluation); 'deterministic'
        takes the posterior's mode and the most likely action, so that acting draws no random numbers at all."""
        if mode not in ACT_MODES:
            raise ConfigError(f"act: mode must be one of {', '.join(ACT_MODES)}, got {mode!r}")
        inputs = {k: obs[k] for k in self.obs_keys}
        inputs["is_first"] = obs["is_first"]
        return self.act_step(distributed.host_local(params), carry, inputs, key, mode=mode)

    # -- learning ------------------------------------------------------------------------------------------------------

    def _loss_terms(self, params, slow_critic, retnorm, batch, key):
        """World-model, actor and critic losses (each reaching only its own parameters), new retnorm, metrics."""
        k_obs, k_img, k_pick = jax.random.split(key, 3)
        wm = self.world_model(params)
        wm_loss, (_, out, metrics) = wm.loss(batch, wm.seq.initial(batch["is_first"].shape[0]), k_obs)
        start, cont0 = self._imagination_starts(wm.seq, out, batch, k_pick)
        traj = self._imagine(params, slow_critic, start, k_img)
        losses, retnorm, behavior_metrics = imagination_losses(traj, cont0, retnorm, self.behavior_cfg,
                                                               discrete=self.act_space.discrete)
        metrics.update(behavior_metrics)
        return {"model": wm_loss, **losses}, retnorm, metrics

    def _imagination_starts(self, seq, out, batch, key):
        """Start states of imagination from the world model's filter outputs: all B·T posterior states, or
        `behavior.imag_starts` of them drawn at random. With `model.mask_cut_episodes` the draw takes the steps whose
        episode the window holds from its start first, and a cut step that still starts (all starts, or too few
        others) gets cont0 = 0, which weighs its whole trajectory out of the actor and critic losses.
        Returns (start state with leading axis N, stop-gradient; cont0 (N,) float32, 1 − is_terminal of each start)."""
        b, t = batch["is_first"].shape
        count = self.behavior_cfg.imag_starts
        start = jax.tree.map(sg, seq.start(out))
        cont0 = 1.0 - batch["is_terminal"].reshape(-1).astype(jnp.float32)
        masked = self.model_cfg.mask_cut_episodes
        if masked:
            uncut = uncut_steps(batch).reshape(-1)
            cont0 = jnp.where(uncut, cont0, 0.0)
        if count and count < b * t:
            if masked:  # uniform among the uncut steps, then among the cut ones
                pick = jax.lax.top_k(jax.random.uniform(key, (b * t,)) + uncut, count)[1]
            else:
                pick = jax.random.permutation(key, b * t)[:count]
            start = jax.tree.map(lambda v: v[pick], start)
            cont0 = cont0[pick]
        return start, cont0

    def _imagine(self, params, slow_critic, start, key) -> dict:
        """`behavior.imagine` from every start with the world model frozen (stop-gradient parameters), in chunks of
        `behavior.imag_chunk` starts when that divides N. Returns its trajectory dict over all N starts."""
        cfg = self.behavior_cfg
        frozen = nnx.merge(self.wm_graph, sg(params["ssm"]), sg(params["model"]))
        rollout = functools.partial(imagine, frozen, self.actor(params), self.critic(params["critic"]),
                                    self.critic(sg(params["critic"])), self.critic(slow_critic), horizon=cfg.horizon,
                                    policy_inputs=self.policy_inputs, cont=cfg.imag_cont)
        n = start["z"].shape[0]
        if not (cfg.imag_chunk and n > cfg.imag_chunk and n % cfg.imag_chunk == 0):
            return rollout(start, key=key)
        # Roll out the starts in chunks, one after the other: the same work, with working sets that stay in the CPU's
        # caches (measured by `r2i bench train`).
        chunks = n // cfg.imag_chunk
        split = jax.tree.map(lambda v: v.reshape((chunks, cfg.imag_chunk) + v.shape[1:]), start)
        traj = jax.lax.map(lambda args: rollout(args[0], key=args[1]), (split, jax.random.split(key, chunks)))
        # (chunks, H, chunk, …) → (H, N, …); last_value (chunks, chunk) → (N,)
        return {k: jnp.moveaxis(v, 0, 1).reshape((cfg.horizon, n) + v.shape[3:]) if k != "last_value"
                else v.reshape((n,)) for k, v in traj.items()}

    def _train(self, state: TrainState, batch: dict, key: jax.Array):
        def total(params):
            losses, retnorm, metrics = self._loss_terms(params, state.slow_critic, state.retnorm, batch, key)
            return sum(losses.values()), (retnorm, metrics)

        (loss, (retnorm, metrics)), grads = jax.value_and_grad(total, has_aux=True)(state.params)
        updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        rate = self.behavior_cfg.slow_critic_fraction
        slow = jax.tree.map(lambda s, c: s + rate * (c - s), state.slow_critic, params["critic"])
        metrics["model/grad_norm"] = optax.tree.norm((grads["model"], grads["ssm"]))
        metrics["actor/grad_norm"] = optax.tree.norm(grads["actor"])
        metrics["critic/grad_norm"] = optax.tree.norm(grads["critic"])
        metrics["train/finite"] = jnp.isfinite(loss) & jnp.all(
            jnp.array([jnp.isfinite(v).all() for v in jax.tree.leaves(grads)])
        )
        return TrainState(params, slow, opt_state, retnorm, state.step + 1), metrics

