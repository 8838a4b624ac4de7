"""S5-style diagonal state-space layers (docs/design.md §4).

Notation (one layer): H real input/output channels, P complex states.

    x_t = Λ̄ ⊙ s_t + B̄ u_t,   s_t = x_init if is_first_t else x_{t-1}
    y_t = Re(C̃ x_t) + D ⊙ u_t

Everything in this module runs in float32 / complex64, whatever the compute dtype of the surrounding network: the
recurrence multiplies hundreds of factors |Λ̄| < 1 together, which bfloat16 cannot represent faithfully.

Shapes in docstrings: B batch, T time, H channels, P states, N layers. The layers take and return their state first,
in the order of `jax.lax.scan`: `layer(carry, u, is_first) → (states, y)`, `layer.step(x, u, is_first) → (x, y)`.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from r2i.nets import Dense

Method = Literal["auto", "associative", "sequential"]
Discretization = Literal["zoh", "bilinear"]


class SSMParam(nnx.Param):
    """Parameters of the state-space maths (Λ, B̃, C̃, D, log Δ, x_init).

    A separate variable type so that the optimiser can put them in their own group (no weight decay).
    """


# ----------------------------------------------------------------------------------------------------------------------
# Initialisation (HiPPO-N, block diagonal)
# ----------------------------------------------------------------------------------------------------------------------


def hippo_legs(n: int) -> np.ndarray:
    """HiPPO-LegS matrix A: (n, n) float64, A_nk = -sqrt(2n+1)sqrt(2k+1) (n>k), -(n+1) (n=k), 0 (n<k)."""
    q = np.sqrt(1.0 + 2.0 * np.arange(n))
    a = -np.tril(np.outer(q, q), k=-1) - np.diag(np.arange(n) + 1.0)
    return a


def hippo_normal(n: int) -> np.ndarray:
    """Normal part S = A + p pᵀ of HiPPO-LegS, p_n = sqrt(n + ½): (n, n) float64.

    S equals -½·I plus a real skew-symmetric matrix, so it is normal and unitarily diagonalisable.
    """
    p = np.sqrt(np.arange(n) + 0.5)
    return hippo_legs(n) + np.outer(p, p)


def hippo_n_block(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of one HiPPO-N block.

    Returns:
      lam: (n,) complex128, Re = mean of diag(S) (= -½), Im = eigenvalues of the Hermitian matrix -i·(S - diag S).
      v:   (n, n) complex128 unitary eigenvectors, S ≈ v diag(lam) vᴴ.
    """
    s = hippo_normal(n)
    diag = np.diagonal(s)
    skew = s - np.diag(diag)
    lam_im, v = np.linalg.eigh(-1j * skew)
    lam = np.mean(diag) * np.ones(n) + 1j * lam_im
    return lam, v


def hippo_n_init(state: int, blocks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block-diagonal HiPPO-N initialisation of P = `state` states in `blocks` blocks of size P / blocks.

    Returns:
      lam:   (P,) complex128 eigenvalues, tiled over blocks.
      v:     (P, P) complex128 block-diagonal eigenvectors.
      v_inv: (P, P) complex128, its inverse (= conjugate transpose, v is unitary).
    """
    if state % blocks:
        raise ValueError(f"ssm state size P={state} must be divisible by ssm blocks={blocks}; change one of them")
    n = state // blocks
    lam_blk, v_blk = hippo_n_block(n)
    lam = np.tile(lam_blk, blocks)
    v = np.kron(np.eye(blocks), v_blk)
    return lam, v, v.conj().T


# ----------------------------------------------------------------------------------------------------------------------
# Discretisation
# ----------------------------------------------------------------------------------------------------------------------


def discretize(
    lam: jax.Array, b_tilde: jax.Array, step: jax.Array, method: Discretization
) -> tuple[jax.Array, jax.Array]:
    """Discretise the continuous diagonal system with per-state step sizes Δ.

    Args:
      lam:     (P,) complex64 continuous eigenvalues Λ.
      b_tilde: (P, H) complex64 input matrix B̃.
      step:    (P,) float32 step sizes Δ > 0.
      method:  "zoh": Λ̄ = exp(ΔΛ), B̄ = (Λ̄ - 1)/Λ · B̃;  "bilinear": Λ̄ = (1 + ΔΛ/2)/(1 - ΔΛ/2), B̄ = Δ/(1 - ΔΛ/2) · B̃.
    Returns:
      lam_bar: (P,) complex64; b_bar: (P, H) complex64.  |Λ̄| < 1 whenever Re Λ < 0 (both methods).
    """
    dl = step * lam
    if method == "zoh":
        lam_bar = jnp.exp(dl)
        b_bar = ((lam_bar - 1.0) / lam)[:, None] * b_tilde
    elif method == "bilinear":
        inv = 1.0 / (1.0 - dl / 2.0)
        lam_bar = inv * (1.0 + dl / 2.0)
        b_bar = (inv * step)[:, None] * b_tilde
    else:
        raise ValueError(f"ssm discretization must be 'zoh' or 'bilinear', got {method!r}")
    return lam_bar, b_bar


# ----------------------------------------------------------------------------------------------------------------------
# The reset-aware linear recurrence
# ----------------------------------------------------------------------------------------------------------------------


def compose_affine(earlier: tuple[jax.Array, jax.Array], later: tuple[jax.Array, jax.Array]):
    """Binary operator of the associative scan: composition of diagonal affine maps.

    Each scan element is the map f(s) = a ⊙ s + b that takes the state before a step to the state after it. An episode
    start is the map with a = 0 and b = Λ̄ x_init + B̄u (it ignores the incoming state), so resets need no special case
    in the operator: ``compose(f_i, f_j) = f_j ∘ f_i = (a_j a_i, a_j b_i + b_j)``.

    Associativity is that of function composition: (f_k ∘ f_j) ∘ f_i = f_k ∘ (f_j ∘ f_i). Written out,
    both sides give (a_k a_j a_i, a_k a_j b_i + a_k b_j + b_k), including when any of the operands is itself a
    composition that contains a reset (a = 0). tests/test_ssm.py checks this numerically on composed operands.
    """
    a_i, b_i = earlier
    a_j, b_j = later
    return a_j * a_i, a_j * b_i + b_j


def default_method() -> str:
    """The faster recurrence for the current backend, from `r2i bench scan` measurements.

    On the 2-core CPU the sequential scan wins at every measured size (see benchmarks/README.md); on accelerators the
    associative scan's O(log T) depth wins.
    """
    return "sequential" if jax.default_backend() == "cpu" else "associative"


def _check_recurrence_shapes(lam_bar, bu, is_first, x_carry, x_init):
    if bu.ndim != 3:
        raise ValueError(f"bu must have shape (B, T, P), got {bu.shape}")
    b, t, p = bu.shape
    if lam_bar.shape not in ((p,), (b, t, p)):
        raise ValueError(f"lam_bar must have shape (P,)={(p,)} or (B, T, P)={(b, t, p)}, got {lam_bar.shape}")
    if is_first.shape != (b, t):
        raise ValueError(f"is_first must have shape (B, T)={(b, t)}, got {is_first.shape}")
    if x_carry.shape != (b, p):
        raise ValueError(f"x_carry must have shape (B, P)={(b, p)}, got {x_carry.shape}")
    if x_init.shape not in ((p,), (b, p)):
        raise ValueError(f"x_init must have shape (P,)={(p,)} or (B, P)={(b, p)}, got {x_init.shape}")


def linear_recurrence(
    lam_bar: jax.Array,
    bu: jax.Array,
    is_first: jax.Array,
    x_carry: jax.Array,
    x_init: jax.Array,
    method: Method = "auto",
) -> jax.Array:
    """All states of the diagonal recurrence with episode resets.

    ``s_t = x_init if is_first[:, t] else x_{t-1}`` (with ``x_{-1} = x_carry``) and ``x_t = lam_bar_t * s_t + bu_t``.
    A reset at step t replaces the state *before* input t is consumed.

    Args:
      lam_bar:  (P,) or (B, T, P) complex64 discrete eigenvalues Λ̄.
      bu:       (B, T, P) complex64 inputs B̄u_t.
      is_first: (B, T) bool episode starts.
      x_carry:  (B, P) complex64 state after the previous window.
      x_init:   (P,) or (B, P) complex64 state an episode starts from (learned or zeros).
      method:   "associative" (jax.lax.associative_scan, O(log T) depth), "sequential" (jax.lax.scan) or "auto"
                (the faster of the two on the current backend, see `default_method`).
    Returns:
      x: (B, T, P) complex64 states x_0 … x_{T-1}. Differentiable in lam_bar, bu, x_carry and x_init.
    """
    _check_recurrence_shapes(lam_bar, bu, is_first, x_carry, x_init)
    if method == "auto":
        method = default_method()
    b, t, p = bu.shape
    x_init_b = jnp.broadcast_to(x_init, (b, p))
    if method == "sequential":
        return _sequential(lam_bar, bu, is_first, x_carry, x_init_b)
    if method == "associative":
        return _associative(lam_bar, bu, is_first, x_carry, x_init_b)
    raise ValueError(f"method must be 'auto', 'associative' or 'sequential', got {method!r}")


def _associative(lam_bar, bu, is_first, x_carry, x_init):
    """Associative scan over the affine maps of `compose_affine`; x_carry enters as the input of the composed map."""
    lam = jnp.broadcast_to(lam_bar, bu.shape)
    reset = is_first[..., None]
    a = jnp.where(reset, jnp.zeros_like(lam), lam)
    b = jnp.where(reset, lam * x_init[:, None, :] + bu, bu)
    a_cum, b_cum = jax.lax.associative_scan(compose_affine, (a, b), axis=1)
    return a_cum * x_carry[:, None, :] + b_cum


def _sequential(lam_bar, bu, is_first, x_carry, x_init):
    """Plain time loop with jax.lax.scan (time-major inside). A constant Λ̄ (P,) is closed over, not tiled over T."""
    per_step_lam = lam_bar.ndim == 3

    def step(x, inputs):
        bu_t, first_t = inputs[0], inputs[1]
        lam_t = inputs[2] if per_step_lam else lam_bar
        x = lam_t * jnp.where(first_t[:, None], x_init, x) + bu_t
        return x, x

    xs = (jnp.swapaxes(bu, 0, 1), jnp.swapaxes(is_first, 0, 1))
    if per_step_lam:
        xs = xs + (jnp.swapaxes(lam_bar, 0, 1),)
    _, states = jax.lax.scan(step, x_carry, xs)
    return jnp.swapaxes(states, 0, 1)


def recurrence_step(lam_bar: jax.Array, bu: jax.Array, is_first: jax.Array, x: jax.Array, x_init: jax.Array):
    """One step of the recurrence.

    Args:
      lam_bar: (P,) complex64; bu: (B, P) complex64; is_first: (B,) bool; x: (B, P) complex64 previous state;
      x_init: (P,) or (B, P) complex64.
    Returns:
      (B, P) complex64 new state.
    """
    s = jnp.where(is_first[:, None], x_init, x)
    return lam_bar * s + bu


# ----------------------------------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------------------------------


def _lecun_normal(key, shape, fan_in):
    return jax.random.normal(key, shape, jnp.float32) / np.sqrt(fan_in)


class S5Layer(nnx.Module):
    """One S5 layer: H real channels in and out, P complex states.

    Parameters are real arrays (Λ_re, Λ_im, B̃ and C̃ as real/imaginary pairs, D, log Δ, optional learned x_init),
    all of type `SSMParam`.
    """

    def __init__(
        self,
        hidden: int,
        state: int,
        *,
        blocks: int = 8,
        discretization: Discretization = "zoh",
        learned_init: bool = False,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        method: Method = "auto",
        c_init: str = "fan_in_p",
        rngs: nnx.Rngs,
    ):
        if discretization not in ("zoh", "bilinear"):
            raise ValueError(f"ssm discretization must be 'zoh' or 'bilinear', got {discretization!r}")
        if c_init not in ("fan_in_p", "fan_in_ph"):
            raise ValueError(f"ssm c_init must be 'fan_in_p' or 'fan_in_ph', got {c_init!r}")
        self.hidden, self.state = hidden, state
        self.discretization = discretization
        self.method = method
        lam, v, v_inv = hippo_n_init(state, blocks)
        self.lam_re = SSMParam(jnp.asarray(lam.real, jnp.float32))
        self.lam_im = SSMParam(jnp.asarray(lam.imag, jnp.float32))
        # B̃ = V⁻¹B and C̃ = CV in complex64 with jnp, so that the module can also be built abstractly (eval_shape).
        # LeCun normal for the (P, H) matrix in JAX's convention (fan-in = P), as in S5 and docs/design.md §4.
        b = _lecun_normal(rngs.params(), (state, hidden), state).astype(jnp.complex64)
        b_tilde = jnp.asarray(v_inv, jnp.complex64) @ b
        self.b_re = SSMParam(b_tilde.real)
        self.b_im = SSMParam(b_tilde.imag)
        # C (H, P, 2) as real/imaginary pairs. 'fan_in_p': std 1/√P, the S5 paper's scale. 'fan_in_ph': JAX's
        # (truncated) LeCun normal over the whole (H, P, 2) array, whose fan-in is P·H, exactly as the official R2I
        # code draws it (ssm/mimo.py: trunc_standard_normal); about √H times smaller, so the SSM starts close to pure
        # feed-through D⊙u.
        if c_init == "fan_in_p":
            c = _lecun_normal(rngs.params(), (hidden, state, 2), state)
        else:
            c = jax.nn.initializers.lecun_normal()(rngs.params(), (hidden, state, 2), jnp.float32)
        c_tilde = jax.lax.complex(c[..., 0], c[..., 1]) @ jnp.asarray(v, jnp.complex64)
        self.c_re = SSMParam(c_tilde.real)
        self.c_im = SSMParam(c_tilde.imag)
        self.d = SSMParam(jax.random.normal(rngs.params(), (hidden,), jnp.float32))
        self.log_step = SSMParam(
            jax.random.uniform(rngs.params(), (state,), jnp.float32, np.log(dt_min), np.log(dt_max))
        )
        self.learned_init = learned_init
        if learned_init:
            self.x0_re = SSMParam(jnp.zeros((state,), jnp.float32))
            self.x0_im = SSMParam(jnp.zeros((state,), jnp.float32))

    # Λ_re is clipped below zero so that |Λ̄| < 1 stays true during training (S5's `clip_eigs`).
    def continuous(self) -> tuple[jax.Array, jax.Array]:
        """Λ: (P,) complex64 and B̃: (P, H) complex64."""
        lam = jax.lax.complex(jnp.minimum(self.lam_re[...], -1e-4), self.lam_im[...])
        return lam, jax.lax.complex(self.b_re[...], self.b_im[...])

    def discrete(self) -> tuple[jax.Array, jax.Array]:
        """Λ̄: (P,) complex64 and B̄: (P, H) complex64."""
        lam, b_tilde = self.continuous()
        return discretize(lam, b_tilde, jnp.exp(self.log_step[...]), self.discretization)

    def x_init(self) -> jax.Array:
        """(P,) complex64 episode-start state: learned or zeros."""
        if self.learned_init:
            return jax.lax.complex(self.x0_re[...], self.x0_im[...])
        return jnp.zeros((self.state,), jnp.complex64)

    def _input(self, b_bar: jax.Array, u: jax.Array) -> jax.Array:
        """B̄u as two real matmuls: u (..., H) float32 → (..., P) complex64."""
        return jax.lax.complex(u @ b_bar.real.T, u @ b_bar.imag.T)

    def _output(self, x: jax.Array, u: jax.Array) -> jax.Array:
        """Re(C̃x) + D⊙u: x (..., P) complex64, u (..., H) float32 → (..., H) float32."""
        return x.real @ self.c_re[...].T - x.imag @ self.c_im[...].T + self.d[...] * u

    def __call__(self, x_carry: jax.Array, u: jax.Array, is_first: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Sequence mode, (carry, inputs) → (states, outputs) in the order of `jax.lax.scan`.

        Args:
          x_carry: (B, P) complex64 state after the previous window; u: (B, T, H) inputs (cast to float32);
          is_first: (B, T) bool.
        Returns:
          x: (B, T, P) complex64 states (x[:, −1] is the next window's carry); y: (B, T, H) float32 outputs.
        """
        u = u.astype(jnp.float32)
        lam_bar, b_bar = self.discrete()
        x = linear_recurrence(lam_bar, self._input(b_bar, u), is_first, x_carry, self.x_init(), self.method)
        return x, self._output(x, u)

    def step(self, x: jax.Array, u: jax.Array, is_first: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Step mode: x (B, P) complex64, u (B, H), is_first (B,) bool → new x (B, P) complex64, y (B, H) float32."""
        u = u.astype(jnp.float32)
        lam_bar, b_bar = self.discrete()
        x = recurrence_step(lam_bar, self._input(b_bar, u), is_first, x, self.x_init())
        return x, self._output(x, u)


class S5Block(nnx.Module):
    """SSM → GELU → GLU → residual → LayerNorm (post-norm). The SSM runs in float32, the rest in `dtype`."""

    def __init__(self, hidden: int, state: int, *, dtype=jnp.float32, rngs: nnx.Rngs, **ssm_kwargs):
        self.ssm = S5Layer(hidden, state, rngs=rngs, **ssm_kwargs)
        self.dtype = dtype
        # Both GLU projections (value W₁, gate W₂) as one H → 2H matmul.
        self.glu = Dense(hidden, 2 * hidden, dtype=dtype, rngs=rngs)
        self.norm = nnx.LayerNorm(hidden, dtype=dtype, rngs=rngs)

    def _mix(self, u: jax.Array, y: jax.Array) -> jax.Array:
        g = jax.nn.gelu(y.astype(self.dtype))
        value, gate = jnp.split(self.glu(g), 2, -1)
        v = value * jax.nn.sigmoid(gate)
        return self.norm(u.astype(self.dtype) + v)

    def __call__(self, x_carry, u, is_first):
        """x_carry (B, P), u (B, T, H), is_first (B, T) → states (B, T, P) complex64, out (B, T, H) dtype."""
        x, y = self.ssm(x_carry, u, is_first)
        return x, self._mix(u, y)

    def step(self, x, u, is_first):
        """x (B, P), u (B, H), is_first (B,) → new x (B, P) complex64, out (B, H) dtype."""
        x, y = self.ssm.step(x, u, is_first)
        return x, self._mix(u, y)


class S5Stack(nnx.Module):
    """`layers` S5 blocks of width H with P states each.

    Carried hidden state: (B, N, P) complex64, all layers' x.
    """

    def __init__(self, hidden: int, state: int, layers: int, *, dtype=jnp.float32, rngs: nnx.Rngs, **ssm_kwargs):
        self.hidden, self.state, self.layers = hidden, state, layers
        self.blocks = nnx.List([S5Block(hidden, state, dtype=dtype, rngs=rngs, **ssm_kwargs) for _ in range(layers)])

    def initial(self, batch: int) -> jax.Array:
        """Zero carry (B, N, P) complex64. With is_first set on the first step, the learned x_init takes over."""
        return jnp.zeros((batch, self.layers, self.state), jnp.complex64)

    def __call__(self, carry, u, is_first):
        """Sequence mode.

        Args:
          carry: (B, N, P) complex64 states after the previous window; u: (B, T, H); is_first: (B, T) bool.
        Returns:
          states: (B, T, N, P) complex64, every layer's x_t (states[:, −1] is the next window's carry);
          out: (B, T, H) in the compute dtype.
        """
        states = []
        for i, block in enumerate(self.blocks):
            x, u = block(carry[:, i], u, is_first)
            states.append(x)
        return jnp.stack(states, axis=2), u

    def step(self, carry, u, is_first):
        """Step mode: carry (B, N, P), u (B, H), is_first (B,) bool → new carry (B, N, P) complex64, out (B, H)."""
        new = []
        for i, block in enumerate(self.blocks):
            x, u = block.step(carry[:, i], u, is_first)
            new.append(x)
        return jnp.stack(new, axis=1), u
