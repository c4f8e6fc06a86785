"""The config of a CoFlow policy (or one of its baselines): network, objective, sampling.

One frozen dataclass; ``algo`` picks the variant and ``for_algo`` fills the fields it implies, so
that a checkpoint's JSON says everything that built it.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

Algo = Literal["coflow-c", "coflow-d", "bc", "flow"]
ALGOS: tuple[str, ...] = ("coflow-c", "coflow-d", "bc", "flow")


@dataclasses.dataclass(frozen=True)
class CoFlowConfig:
    """A CoFlow model and how it is trained and sampled."""

    algo: Algo = "coflow-c"
    """``coflow-c``: every agent's current observation in-painted (joint conditioning);
    ``coflow-d``: each agent plans from its own observation only and executes its own row;
    ``bc``: per-agent behaviour cloning (an MLP, no planner); ``flow``: a flow-matching planner
    without the averaged-velocity surrogate, sampled in ``flow_steps`` Euler steps (MADiff-like)."""
    horizon: int = 24
    """H: observation steps planned, the current one included (a multiple of 2 ** (levels - 1): the
    U-Net halves it between levels)."""
    width: int = 32
    """Channels of the U-Net's first level (the paper's 128 does not fit 2 CPU cores)."""
    dim_mults: tuple[int, ...] = (1, 4, 8)
    """Channel multiplier of each U-Net level; the time axis halves between levels."""
    kernel: int = 5
    """Temporal convolution kernel size."""
    groups: int = 8
    """GroupNorm groups (divides every level's channels)."""
    emb_dim: int = 64
    """Size of the (r, t) time embedding and of the return embedding that is added to it."""
    residual: bool = False
    """Plan the change from the current observation: steps 1.. of a plan are ``(o_h - o_0) /
    delta_std`` (normalised observations; ``delta_std`` per feature from the dataset), step 0 the
    current observation itself; False: every step is the observation (the paper's plan)."""
    cva: bool = True
    """Coordinated Velocity Attention across agents at the bottleneck and every skip connection;
    False: the agents are planned independently (the CVA-off ablation)."""
    cva_heads: int = 4
    """Attention heads of each CVA layer (divides every level's channels)."""
    surrogate: bool = True
    """Train the MeanFlow averaged velocity with the finite-difference surrogate (r < t for half the
    batch); False: plain flow matching (r = t always), which needs more sampling steps."""
    time_mu: float = -0.4
    """Mean of the logit-normal the times t and r are drawn from."""
    time_sigma: float = 1.0
    """Std of that logit-normal."""
    equal_time_share: float = 0.5
    """Share of the batch trained with r = t (the instantaneous velocity)."""
    cond_drop: float = 0.25
    """Probability that a training sample's return condition is dropped (classifier-free guidance)."""
    guidance: float = 1.2
    """Guidance weight w at sampling: u = u_uncond + w (u_cond - u_uncond); 1: conditional only."""
    target_return: float = 0.9
    """Return-to-go asked for at sampling, in the dataset's scaled units (by default 1 is the best
    return-to-go in the data: see ``return_scale``)."""
    steps: int = 1
    """Sampling steps k of CoFlow (1: one network pass per plan, with guidance two in one batch)."""
    flow_steps: int = 20
    """Sampling steps of the ``flow`` planner."""
    alpha: float = 1.0
    """Scale of every CVA output at inference (the dose-response probe; training uses 1)."""
    id_hidden: int = 256
    """Hidden width of the inverse-dynamics MLP (three layers, Mish) and of the BC MLP."""
    action_weight: float = 1.0
    """Weight of the inverse-dynamics (or BC) loss beside the flow loss."""
    discount: float = 0.99
    """Discount of the returns-to-go."""
    return_scale: float = 0.0
    """Returns-to-go are divided by this; 0: mapped onto [0, 1] from the dataset's worst to best."""

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}")
        if not 1 <= self.width <= 1024 or not 1 <= len(self.dim_mults) <= 6 or not 1 <= max(self.dim_mults) <= 64:
            raise ValueError(
                f"width must be in [1, 1024] and dim_mults 1 to 6 values in [1, 64], got {self.width}, {self.dim_mults}"
            )
        if self.horizon < 4 or self.horizon % 2 ** (len(self.dim_mults) - 1):
            raise ValueError(
                f"horizon must be >= 4 and a multiple of {2 ** (len(self.dim_mults) - 1)} "
                f"(the U-Net halves it {len(self.dim_mults) - 1} times), got {self.horizon}"
            )
        for m in self.dim_mults:
            ch = self.width * m
            if ch % self.groups or ch % self.cva_heads:
                raise ValueError(f"channels {ch} (width {self.width} x {m}) must divide by groups and cva_heads")
        if self.kernel % 2 != 1:
            raise ValueError(f"kernel must be odd (same-length convolutions), got {self.kernel}")
        if not 0.0 <= self.cond_drop < 1.0 or not 0.0 <= self.equal_time_share <= 1.0:
            raise ValueError("cond_drop must be in [0, 1) and equal_time_share in [0, 1]")
        if self.steps < 1 or self.flow_steps < 1:
            raise ValueError(f"steps and flow_steps must be >= 1, got {self.steps}, {self.flow_steps}")
        if not 0.0 < self.discount <= 1.0 or self.return_scale < 0 or self.time_sigma <= 0:
            raise ValueError("need 0 < discount <= 1, return_scale >= 0 and time_sigma > 0")

    @property
    def decentralised(self) -> bool:
        return self.algo == "coflow-d"

    @property
    def sample_steps(self) -> int:
        """Steps a plan is sampled in: ``flow_steps`` for the flow planner, else ``steps``."""
        return self.flow_steps if self.algo == "flow" else self.steps

    @property
    def mean_flow(self) -> bool:
        """Whether the network learns the averaged velocity u(z, r, t) (else r = t always)."""
        return self.surrogate and self.algo != "flow"


MODEL_PRESETS: dict[str, dict[str, object]] = {
    "default": {},
    "cpu": {"width": 16, "dim_mults": (1, 2), "horizon": 8, "id_hidden": 128},
}
"""Named model settings over ``CoFlowConfig``'s defaults (``train_coflow.py --preset``). ``cpu``: the
same architecture (U-Net with FiLM, gated CVA, surrogate, guidance, inverse dynamics) made small
enough to train on one CPU thread: width 16, two levels (one halving), horizon 8 (of mpe-spread's
25-step episodes), inverse dynamics 128 wide; about 161k parameters against the default's 4.6M."""


def preset_config(name: str, **overrides: object) -> CoFlowConfig:
    """``CoFlowConfig`` of the preset ``name`` (``MODEL_PRESETS``) with ``overrides``."""
    if name not in MODEL_PRESETS:
        raise ValueError(f"preset must be one of {tuple(MODEL_PRESETS)}, got {name!r}")
    return CoFlowConfig(**{**MODEL_PRESETS[name], **overrides})  # type: ignore[arg-type]


def for_algo(algo: str, **overrides: object) -> CoFlowConfig:
    """The config of ``algo`` with ``overrides``: ``flow`` trains without the surrogate."""
    base = {"surrogate": False} if algo == "flow" else {}
    return CoFlowConfig(algo=algo, **{**base, **overrides})  # type: ignore[arg-type]
