"""The configuration schema: every setting of r2i with its type, default, one-line doc and the values it allows.

Each field is declared with `opt(default, doc, …)`: `choices` lists the only valid values; `gt`, `ge`, `lt`, `le`
bound a number (>, >=, <, <=), and `why` gives a bound's reason for its error message. Rules that tie several fields
together (divisibility, orderings, the batch) and the machinery that reads this schema (YAML presets, dotted
overrides, type conversion, validation, `--help-config`) are in `r2i.config`, which re-exports these classes.

Where the official R2I code differs from a default (SSM discretisation, initial state and C̃ init, imagined
continuation, SSM gradient clip), the default is what the CPU presets were measured with and each field's doc names the
official value; the paper presets set the official values (see the README's "Paper presets").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Allowed:
    """The values a field accepts beyond its type: one of `choices`, or numbers within the bounds gt < x, ge <= x,
    x < lt, x <= le (each None when absent). `why` says why a bound is what it is (shown in its error message)."""

    choices: tuple | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    why: str = ""

    def __post_init__(self):
        if (self.gt is not None and self.ge is not None) or (self.lt is not None and self.le is not None):
            raise TypeError("a field has at most one lower bound (gt or ge) and one upper bound (lt or le)")
        if self.choices is not None and {self.gt, self.ge, self.lt, self.le} != {None}:
            raise TypeError("a field has either choices or bounds")


def opt(default: Any, doc: str, *, choices: tuple | None = None, gt: float | None = None, ge: float | None = None,
        lt: float | None = None, le: float | None = None, why: str = ""):
    """A dataclass field: its default, a one-line description (shown by `r2i train --help-config`) and the values it
    allows (see `Allowed`)."""
    metadata = {"doc": doc, "allowed": Allowed(choices, gt, ge, lt, le, why)}
    if isinstance(default, (dict, list)) or dataclasses.is_dataclass(default):
        return field(default_factory=lambda: _copy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _copy(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.replace(value)
    return type(value)(value)


@dataclass
class MLPConfig:
    layers: int = opt(1, "hidden layers (Linear → LayerNorm → SiLU)", ge=0)
    units: int = opt(128, "units per hidden layer", gt=0)


@dataclass
class SSMConfig:
    units: int = opt(128, "H: channels of every S5 layer (width of the sequence model)", gt=0)
    state: int = opt(64, "P: complex states per layer", gt=0)
    layers: int = opt(2, "number of stacked S5 blocks", ge=1)
    blocks: int = opt(4, "HiPPO-N blocks the P states are split into (P must be divisible by it)", gt=0)
    discretization: str = opt("zoh", "'zoh' or 'bilinear' (official R2I: bilinear, except bsuite: zoh)",
                              choices=("zoh", "bilinear"))
    learned_init: bool = opt(False, "learn the episode-start state x_init instead of zeros (official R2I: learned, except "
                             "bsuite: zeros)")
    c_init: str = opt("fan_in_p", "C̃ = C·V with C drawn as: 'fan_in_p' normal, std 1/√P (S5 paper; the CPU presets) or "
                      "'fan_in_ph' truncated LeCun normal over the whole (H, P, 2) array, std 1/√(P·H) (official R2I)",
                      choices=("fan_in_p", "fan_in_ph"))
    dt_min: float = opt(1e-3, "lower bound of the initial step sizes Δ", gt=0)
    dt_max: float = opt(1e-1, "upper bound of the initial step sizes Δ")
    method: str = opt("auto", "scan over time: 'auto' (per backend), 'sequential' or 'associative'",
                      choices=("auto", "sequential", "associative"))


@dataclass
class ModelConfig:
    sequence: str = opt("s3m", "sequence model: 's3m' (S5 stack, R2I) or 'gru' (DreamerV3 RSSM)",
                        choices=("s3m", "gru"))
    deter: int = opt(128, "size of h_t (S3M: projection of the stack output; GRU: recurrent state)", gt=0)
    hidden: int = opt(128, "units of the posterior and prior layers (and of the GRU's input layer)", gt=0)
    stoch: int = opt(16, "number of categorical latent variables", gt=0)
    classes: int = opt(16, "classes per categorical latent variable", ge=2,
                       why="a categorical latent with one class carries no information")
    unimix: float = opt(0.01, "uniform mixture of the latent categoricals", ge=0.0, lt=1.0)
    latent_input: str = opt("sample", "what the sequence model reads of the previous latent: 'sample' (DreamerV3, "
                            "R2I); 'probs', its probabilities, or 'mode', the one-hot of its most likely class "
                            "(posterior when filtering, prior when imagining): no sampling noise for the recurrent "
                            "state to sum over long memories; the heads and the policy still read the sample. With "
                            "'probs' S3M's imagined rollouts leave the data after a few steps (docs/notes.md)",
                            choices=("sample", "probs", "mode"))
    ssm: SSMConfig = opt(SSMConfig(), "S5 stack (used when sequence='s3m')")
    learned_initial_gru: bool = opt(True, "GRU: learn the episode-start state (DreamerV3)")
    encoder: MLPConfig = opt(MLPConfig(), "MLP over the symlog'd vector observations")
    decoder: MLPConfig = opt(MLPConfig(), "MLP of the vector-observation decoder")
    cnn_depth: int = opt(16, "channels of the first conv layer of the image encoder/decoder (d, 2d, 4d, 8d)", gt=0)
    reward_head: MLPConfig = opt(MLPConfig(), "reward predictor")
    reward_out_scale: float = opt(0.0, "variance scale of the reward head's output kernel at initialisation: 0 = zeros "
                                  "(DreamerV3, R2I), 1 = fan-average like every other layer", ge=0)
    cont_head: MLPConfig = opt(MLPConfig(), "continue predictor")
    # Odd as well (bins symmetric around 0): r2i.config.validate checks that.
    reward_bins: int = opt(255, "bins of the symlog two-hot reward and value distributions", ge=3,
                           why="an odd number of bins, symmetric around 0")
    kl_free: float = opt(1.0, "free nats of both KL terms", ge=0)
    kl_dyn: float = opt(0.5, "β_dyn: weight of KL[sg(q) ‖ p]", ge=0)
    kl_rep: float = opt(0.1, "β_rep: weight of KL[q ‖ sg(p)]", ge=0)
    loss_scales: dict = opt({}, "weights of the prediction losses, e.g. {reward: 2.0}: keys vector, image (decoders), "
                            "reward, cont; unset = 1.0 (the KL terms: kl_dyn, kl_rep)")
    policy_inputs: str = opt("hidden", "actor/critic inputs: 'output' (z,h), 'hidden' (z,x) or 'full' (z,h,x)",
                             choices=("output", "hidden", "full"))
    head_inputs: str = opt("output", "reward and continue heads' inputs: 'output' (h,z) as in R2I and DreamerV3, or "
                           "'full' (h,z,x), which adds the S5 hidden state x of every layer (the GRU reads (h,z) "
                           "either way)", choices=("output", "full"))
    mask_cut_episodes: bool = opt(False, "leave the steps of the episode that a training window's start cut into out "
                                  "of the reward loss and the imagination starts: their sequence state lacks the "
                                  "episode's steps before the window, so rewards that depend on them are noise there, "
                                  "and acting never meets such a state. For windows that hold whole episodes (the "
                                  "memory sweeps); with windows shorter than the episodes it leaves out most steps")
    dtype: str = opt("auto", "compute dtype: 'auto' (float32 on CPU, bfloat16 on GPU/TPU), 'float32', 'bfloat16'",
                     choices=("auto", "float32", "bfloat16"))


@dataclass
class BehaviorConfig:
    horizon: int = opt(15, "imagination horizon H", gt=0)
    discount: float = opt(1 - 1 / 333, "γ", gt=0.0, le=1.0)
    lam: float = opt(0.95, "λ of the λ-returns", ge=0.0, le=1.0)
    actor: MLPConfig = opt(MLPConfig(), "actor network")
    critic: MLPConfig = opt(MLPConfig(), "critic network")
    entropy: float = opt(3e-4, "actor entropy bonus η", ge=0)
    actor_unimix: float = opt(0.01, "uniform mixture of discrete actor distributions", ge=0.0, lt=1.0)
    min_std: float = opt(0.1, "continuous actor: minimum standard deviation", gt=0)
    max_std: float = opt(1.0, "continuous actor: maximum standard deviation")
    slow_critic_fraction: float = opt(0.02, "EMA rate of the slow critic", ge=0.0, le=1.0)
    slow_reg: float = opt(1.0, "weight of the critic's regulariser towards the slow critic", ge=0)
    retnorm_decay: float = opt(0.99, "EMA decay of the return percentiles", ge=0.0, lt=1.0)
    retnorm_low: float = opt(0.05, "lower return percentile", ge=0.0, le=1.0)
    retnorm_high: float = opt(0.95, "upper return percentile", ge=0.0, le=1.0)
    imag_starts: int = opt(0, "imagination starts per update: 0 = every posterior state of the batch (B·L)", ge=0)
    imag_chunk: int = opt(0, "roll out the starts in chunks of this many (same maths, smaller working sets); 0 = all "
                          "at once", ge=0)
    imag_cont: str = opt("prob", "imagined continuation ĉ: 'prob' the continue head's Bernoulli probability (the CPU "
                         "presets) or 'mode' its mode, 0 or 1 (official R2I / DreamerV3 2023)",
                         choices=("prob", "mode"))


@dataclass
class OptimConfig:
    model_lr: float = opt(1e-4, "world-model learning rate", gt=0)
    model_eps: float = opt(1e-8, "world-model Adam epsilon", gt=0)
    model_clip: float = opt(1000.0, "world-model global-norm gradient clip", gt=0)
    ssm_lr: float = opt(0.0, "learning rate of the SSM parameters (Λ, B̃, C̃, D, log Δ); 0 = model_lr", ge=0)
    actor_lr: float = opt(3e-5, "actor learning rate", gt=0)
    critic_lr: float = opt(3e-5, "critic learning rate", gt=0)
    ssm_clip: str = opt("model", "SSM gradient clip: 'model' inside the world model's global norm (the CPU presets) or "
                        "'per_kind' each kind (Λ_re, Λ_im, B̃, C̃, D, log Δ; all layers) by its own global norm at "
                        "model_clip (official R2I)", choices=("model", "per_kind"))
    ac_eps: float = opt(1e-5, "actor and critic Adam epsilon", gt=0)
    actor_warmup: int = opt(0, "updates over which the actor's learning rate rises linearly from 0 to actor_lr "
                               "(DreamerV3 2024 warms every optimiser up over 1,000); 0 = none", ge=0)
    actor_clip: float = opt(100.0, "actor global-norm gradient clip", gt=0)
    critic_clip: float = opt(100.0, "critic global-norm gradient clip", gt=0)
    weight_decay: float = opt(0.0, "decoupled weight decay on kernels (never on SSM parameters or norms)", ge=0)


@dataclass
class EnvConfig:
    id: str = opt("r2i:memory_length/10", "environment id: r2i:…, gym:…, popgym:…, bsuite:…, atari:…, dmc:…, memorymaze:…")
    num_envs: int = opt(4, "environments stepped in parallel for training", gt=0)
    parallel: bool = opt(False, "step the environments in worker processes (worth it for slow envs)")
    options: dict = opt({}, "keyword options passed to the environment constructor")
    eval_envs: int = opt(4, "environments used for evaluation episodes", gt=0)


@dataclass
class ReplayConfig:
    capacity: int = opt(1_000_000, "replay capacity in steps, over all env streams (FIFO)", gt=0)
    backend: str = opt("memory", "'memory' (NumPy arrays in RAM) or 'disk' (memory-mapped chunk files, RAM bounded)",
                       choices=("memory", "disk"))
    directory: str = opt("", "disk backend: where the chunk files live ('' = <logdir>/replay; relative to logdir)")
    chunk: int = opt(1024, "disk backend: ring slots per chunk file and env (a crash loses at most one chunk)", gt=0)


# How a policy acts (`Agent.act`, `r2i eval --mode`, `run.eval_mode`): 'sample' draws the latent and the action
# (training); 'greedy' draws the latent and takes the most likely action (DreamerV3's evaluation); 'deterministic' takes
# the posterior's mode and the most likely action.
ACT_MODES = ("sample", "greedy", "deterministic")


@dataclass
class RunConfig:
    steps: int = opt(12_000, "env steps to train for (summed over envs)", ge=0)
    train_ratio: float = opt(512.0, "replayed steps per env step (one update replays batch_size·batch_length)", gt=0)
    batch_size: int = opt(16, "B: sequences per update", gt=0)
    batch_length: int = opt(64, "L: steps per sequence", gt=0)
    prefill: int = opt(2_000, "env steps of uniformly random actions before training starts", ge=0)
    log_every: int = opt(2_000, "env steps between metric writes", gt=0)
    eval_every: int = opt(10_000, "env steps between evaluation rounds (0 = never)", ge=0)
    eval_episodes: int = opt(32, "episodes per evaluation round", ge=0)
    checkpoint_every: float = opt(600.0, "seconds between checkpoints (also written at the end and on SIGINT/SIGTERM)",
                                  gt=0)
    snapshot_every: int = opt(0, "env steps between snapshots kept for good in <logdir>/snapshots: the agent's "
                              "parameters and optimiser state, without the replay, to load a policy from any point "
                              "of a run with r2i.load(logdir, step) or r2i eval --step (0 = none: a run keeps only "
                              "its two newest checkpoints)", ge=0)
    success_window: int = opt(100, "training episodes averaged into episode/success_recent", gt=0)
    stop_at_success: float = opt(0.0, "finish once an evaluation round's run.stop_metric reaches this (0 = never; a "
                                 "run whose evaluations lack that metric says so at its first one and trains to "
                                 "run.steps)", ge=0.0, le=1.0)
    stop_rounds: int = opt(1, "evaluation rounds in a row whose run.stop_metric must reach run.stop_at_success before "
                           "the run finishes: 1 = the first round that does; more tells a policy that holds its answer "
                           "from one lucky round", gt=0, le=32)
    stop_metric: str = opt("eval/success", "the evaluation metric run.stop_at_success reads: eval/success (the env's "
                           "log_success), or another eval/ key, e.g. eval/return for POPGym's normalised return")
    eval_mode: str = opt("greedy", "how evaluation rounds act: 'greedy' (DreamerV3: a sampled latent, the most likely "
                         "action), 'deterministic' (the posterior's mode and the most likely action) or 'sample'",
                         choices=ACT_MODES)
    eval_sampled: bool = opt(False, "each evaluation round also runs the sampled policy, logged as eval/<key>_sampled "
                             "(the official R2I agent samples when evaluating; the greedy eval/<key> stays)")
    eval_video: bool = opt(True, "image envs: log each evaluation round's episodes and the world model's open-loop "
                           "prediction to TensorBoard (GIFs)")
    cpu_threads: int = opt(0, "threads XLA's CPU runtime spreads each computation over (0 = one per core the process "
                           "may use, XLA's default); set when JAX starts (r2i/threads.py), Linux only", ge=0)


# The world model's prediction-loss terms that `model.loss_scales` may weight (r2i.worldmodel declares every term's
# scale from it, and checks that its loss terms and scales match).
LOSS_SCALE_TERMS = ("vector", "image", "reward", "cont")


@dataclass
class Config:
    seed: int = opt(0, "seed of parameters, environments, replay sampling and actions", ge=0)
    logdir: str = opt("", "run directory (default: runs/<preset>-<env>-<time>)")
    env: EnvConfig = opt(EnvConfig(), "environment")
    replay: ReplayConfig = opt(ReplayConfig(), "replay buffer")
    run: RunConfig = opt(RunConfig(), "training schedule")
    model: ModelConfig = opt(ModelConfig(), "world model")
    behavior: BehaviorConfig = opt(BehaviorConfig(), "actor-critic")
    optim: OptimConfig = opt(OptimConfig(), "optimisers")
