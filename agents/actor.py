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
def widen_input(src: nn.Module, dst: nn.Module, cols: list[int]) -> None:
    """Copy ``src`` (a ``net`` MLP with its input normaliser ``norm``, as the actor and the critic
    have) into ``dst``, which reads more inputs: source input ``i`` goes to column ``cols[i]``; the
    other columns of the first layer are zero and keep a unit normaliser, so ``dst`` computes what
    ``src`` did until training gives them weight. Every other parameter (``log_std`` too) is copied."""
    state = src.state_dict()
    dst.load_state_dict(
        {k: v for k, v in state.items() if k not in ("net.0.weight", "norm.mean", "norm.var")}, strict=False
    )
    dst.net[0].weight.zero_()
    dst.net[0].weight[:, cols] = src.net[0].weight
    dst.norm.mean.zero_()
    dst.norm.var.fill_(1.0)
    dst.norm.mean[cols] = src.norm.mean
    dst.norm.var[cols] = src.norm.var


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

    def widened(self, extra: int) -> GaussianActor:
        """A copy reading ``extra`` more inputs appended at the end of its group, with zero weights
        (and a unit normaliser) there: it acts as this one until training gives them weight."""
        if extra < 0:
            raise ValueError(f"extra must be >= 0, got {extra}")
        out = GaussianActor(self.obs_dim + extra, self.act_dim, self.hidden, self.group).to(self.log_std.device)
        widen_input(self, out, list(range(self.obs_dim)))
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
        actor = cls(meta["obs_dim"], meta["act_dim"], tuple(meta["hidden"]), meta["obs_group"])
        checkpoint.fill(actor, tensors, path)
        return actor, meta
