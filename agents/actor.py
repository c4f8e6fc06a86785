"""A Gaussian MLP actor over one observation group, with its running observation normaliser:
the policy a teacher checkpoint holds, and what ``--policy PATH`` loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from agents import checkpoint


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int) -> nn.Sequential:
    """Linear layers with ELU between them: ``in_dim -> hidden... -> out_dim``."""
    layers: list[nn.Module] = []
    last = in_dim
    for h in hidden:
        layers += [nn.Linear(last, h), nn.ELU()]
        last = h
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


class RunningNorm(nn.Module):
    """Running mean and variance of observations ``[..., dim]`` (Chan et al. parallel update)."""

    def __init__(self, dim: int, eps: float = 1e-8, clip: float = 10.0) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.tensor(eps))
        self.clip = clip

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).float()
        n = x.shape[0]
        mean, var = x.mean(0), x.var(0, unbiased=False)
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.var = (self.var * self.count + var * n + delta**2 * self.count * n / total) / total
        self.count = total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / torch.sqrt(self.var + 1e-8)).clamp(-self.clip, self.clip)


@torch.no_grad()
def widen(src: nn.Module, dst: nn.Module, cols: list[int]) -> None:
    """Copy ``src`` (a ``net`` MLP with its input normaliser ``norm``, as the actor and the critic
    have) into ``dst``, which may read more inputs and have wider hidden layers (as many of them):
    source input ``i`` goes to column ``cols[i]``, the other columns of the first layer are zero and
    keep a unit normaliser; each layer's source weights go to the top-left block, and the units
    ``dst`` adds keep their random incoming weights but send zero weight to the next layer. So
    ``dst`` computes what ``src`` did until training gives the new inputs and units weight (a
    function-preserving widening, "Net2WiderNet" with zero fan-out). Every other parameter
    (``log_std`` too) and buffer is copied."""
    ls = [m for m in src.net if isinstance(m, nn.Linear)]
    ld = [m for m in dst.net if isinstance(m, nn.Linear)]
    shape_s = [ls[0].in_features] + [m.out_features for m in ls]
    shape_d = [ld[0].in_features] + [m.out_features for m in ld]
    fits = (
        len(ls) == len(ld)
        and shape_d[-1] == shape_s[-1]
        and all(d >= s for d, s in zip(shape_d[1:-1], shape_s[1:-1], strict=True))
        and len(cols) == len(set(cols)) == shape_s[0]
        and all(0 <= c < shape_d[0] for c in cols)
    )
    if not fits:
        raise ValueError(
            f"cannot widen an MLP {shape_s} into {shape_d} with input columns {cols}: expected as many "
            "layers, hidden layers at least as wide, the same output, and one distinct input column each"
        )
    state = src.state_dict()
    dst.load_state_dict({k: v for k, v in state.items() if not k.startswith(("net.", "norm."))}, strict=False)
    for i, (s, d) in enumerate(zip(ls, ld, strict=True)):
        rows = s.out_features
        if i == 0:
            d.weight[:rows].zero_()
            d.weight[:rows, cols] = s.weight
        else:
            d.weight[:, s.in_features :].zero_()  # what the new units of the layer below send
            d.weight[:rows, : s.in_features] = s.weight
        d.bias[:rows] = s.bias
    dst.norm.mean.zero_()
    dst.norm.var.fill_(1.0)
    dst.norm.mean[cols] = src.norm.mean
    dst.norm.var[cols] = src.norm.var
    dst.norm.count.copy_(src.norm.count)


ACTOR_SCHEMA = {
    "env": checkpoint.TEXT,
    "env_config": checkpoint.FIELDS,
    "obs_group": checkpoint.TEXT,
    "obs_dim": checkpoint.integer(1, 1_000_000),
    "act_dim": checkpoint.integer(1, 1024),
    "hidden": checkpoint.integers(1, 65_536, 16),
}
"""What a teacher checkpoint's metadata must hold, checked before the network is built."""


class GaussianActor(nn.Module):
    """``obs[group]`` ``[..., obs_dim]`` -> action mean ``[..., act_dim]`` (tanh-squashed to [-1, 1])
    and a state-independent log standard deviation."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (256, 256), group: str = "privileged"):
        super().__init__()
        self.group, self.obs_dim, self.act_dim, self.hidden = group, obs_dim, act_dim, tuple(hidden)
        self.net = mlp(obs_dim, tuple(hidden), act_dim)
        self.log_std = nn.Parameter(torch.full((act_dim,), -0.5))
        self.norm = RunningNorm(obs_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(self.norm(obs)))

    @torch.no_grad()
    def __call__(self, obs: dict[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """The deterministic action (the mean) for a dict of groups or one tensor."""
        x = obs[self.group] if isinstance(obs, dict) else obs
        return super().__call__(x.float())

    def widened(self, extra: int, hidden: tuple[int, ...] | None = None) -> GaussianActor:
        """A copy reading ``extra`` more inputs appended at the end of its group, with zero weights
        (and a unit normaliser) there, and with hidden layers ``hidden`` (default its own; as many,
        each at least as wide: see ``widen``): it acts as this one until training gives the new
        inputs and units weight."""
        if extra < 0:
            raise ValueError(f"extra must be >= 0, got {extra}")
        hidden = self.hidden if hidden is None else tuple(hidden)
        out = GaussianActor(self.obs_dim + extra, self.act_dim, hidden, self.group).to(self.log_std.device)
        widen(self, out, list(range(self.obs_dim)))
        return out

    def save(self, path: str | Path, env_name: str, env_config: dict[str, Any], **extra: Any) -> Path:
        meta = {
            "kind": "gaussian_mlp",
            "env": env_name,
            "env_config": env_config,
            "obs_group": self.group,
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "hidden": list(self.hidden),
            **extra,
        }
        return checkpoint.save(path, self.state_dict(), meta)

    @classmethod
    def load(cls, path: str | Path) -> tuple[GaussianActor, dict[str, Any]]:
        tensors, meta = checkpoint.load(path, "gaussian_mlp")
        checkpoint.check_meta(meta, path, ACTOR_SCHEMA)
        sizes = [meta["obs_dim"], *meta["hidden"], meta["act_dim"]]
        checkpoint.check_size(path, sum((a + 1) * b for a, b in zip(sizes, sizes[1:], strict=False)))
        actor = cls(meta["obs_dim"], meta["act_dim"], tuple(meta["hidden"]), meta["obs_group"])
        checkpoint.fill(actor, tensors, path)
        return actor, meta


def load_teacher_policy(path: Path, env: Any) -> GaussianActor:
    """A teacher's actor from its checkpoint (kind ``gaussian_mlp``), checked against ``env``."""
    actor, meta = GaussianActor.load(path)
    checkpoint.check_env(meta, path, env)
    # A teacher trained with another observability reads the group the env keeps for it, if any
    # (soccer with fov keeps ``privileged_global`` for opponents trained with global observations).
    theirs = meta.get("env_config", {}).get("observability")
    mine = getattr(getattr(env, "cfg", None), "observability", None)
    if theirs and mine and theirs != mine and f"{actor.group}_{theirs}" in env.observation_spaces:
        actor.group = f"{actor.group}_{theirs}"
    space = env.observation_spaces.get(actor.group)
    if space is None or space.shape != (actor.obs_dim,):
        got = None if space is None else space.shape
        raise checkpoint.CheckpointError(f"{path} reads {actor.group!r} of size {actor.obs_dim}; this env gives {got}")
    return actor.to(env.device)
