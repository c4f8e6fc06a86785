"""The PPO update: clipped surrogate and value losses, entropy bonus, gradient clipping,
minibatches and epochs, adaptive-KL or linear learning rate."""

from __future__ import annotations

import copy
import dataclasses
import math

import torch
from torch import nn

from agents import distributed
from agents.actor import GaussianActor, RunningNorm, mlp
from agents.ppo.storage import RolloutStorage


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO hyper-parameters."""

    steps_per_env: int = 32
    """Rollout length per learner slot between updates."""
    epochs: int = 5
    """Passes over each rollout."""
    minibatches: int = 4
    """Minibatches per pass."""
    gamma: float = 0.99
    """Discount."""
    lam: float = 0.95
    """GAE lambda."""
    clip: float = 0.2
    """Ratio clip of the surrogate, and of the value change."""
    value_coef: float = 1.0
    """Weight of the value loss."""
    entropy_coef: float = 0.003
    """Weight of the entropy bonus."""
    lr: float = 3e-4
    """Initial learning rate."""
    schedule: str = "adaptive"
    """``adaptive`` (keep the KL near ``desired_kl``), ``linear`` (to 0 at the end) or ``fixed``."""
    desired_kl: float = 0.01
    """Target KL of the adaptive schedule."""
    max_grad_norm: float = 1.0
    """Gradient clipping."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layers of actor and critic."""
    init_log_std: float = -0.5
    """Initial log standard deviation of the actions."""
    critic_warmup: int = 0
    """Updates at the start of a run that train only the critic (the actor's loss terms left out,
    the learning rate held): a fresh critic beside a trained actor (``--init-from`` a checkpoint
    that holds no critic) first learns the values instead of steering the actor with noise (see
    docs/teachers.md, "Warm starts and observability curricula")."""
    actor_ema: float = 0.0
    """Decay per update of an exponential moving average of the actor's weights (0: off; e.g.
    0.99 averages over about the last 100 updates). With it the checkpoint's policy is the
    average, meant to even out the wander that noisy updates give a policy near its best (a
    fine-tune); rollouts still use the current actor, saved beside it in ``actor_raw/``."""


def surrogate_loss(log_prob: torch.Tensor, old_log_prob: torch.Tensor, adv: torch.Tensor, clip: float) -> torch.Tensor:
    """Clipped PPO surrogate, to minimise: ``-mean(min(r A, clip(r, 1 - c, 1 + c) A))``."""
    ratio = torch.exp(log_prob - old_log_prob)
    return -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()


def value_loss(value: torch.Tensor, old_value: torch.Tensor, returns: torch.Tensor, clip: float) -> torch.Tensor:
    """Clipped value loss: ``mean(max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2))``."""
    clipped = old_value + (value - old_value).clamp(-clip, clip)
    return torch.max((value - returns) ** 2, (clipped - returns) ** 2).mean()


def gaussian_kl(mu0: torch.Tensor, sigma0: torch.Tensor, mu1: torch.Tensor, sigma1: torch.Tensor) -> torch.Tensor:
    """KL(N0 || N1) of diagonal Gaussians, summed over the action dimension: ``[...]``."""
    return (torch.log(sigma1 / sigma0) + (sigma0**2 + (mu0 - mu1) ** 2) / (2 * sigma1**2) - 0.5).sum(-1)


@torch.no_grad()
def average_into(avg: nn.Module, current: nn.Module, decay: float) -> None:
    """One step of an exponential moving average of weights: ``avg = decay avg + (1 - decay)
    current`` for every parameter; buffers (the observation normaliser) are copied from ``current``."""
    for a, p in zip(avg.parameters(), current.parameters(), strict=True):
        a.lerp_(p, 1 - decay)
    for a, b in zip(avg.buffers(), current.buffers(), strict=True):
        a.copy_(b)


class Critic(nn.Module):
    """Value of the ``critic`` observation group, with its own running normaliser."""

    def __init__(self, obs_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, 1)
        self.norm = RunningNorm(obs_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(obs)).squeeze(-1)


class PPO:
    """Actor (``GaussianActor``), critic and their optimiser."""

    def __init__(self, actor: GaussianActor, critic: Critic, cfg: PPOConfig, total_updates: int) -> None:
        if not 0.0 <= cfg.actor_ema < 1.0:
            raise ValueError(f"actor_ema must be in [0, 1), got {cfg.actor_ema}")
        self.actor, self.critic, self.cfg = actor, critic, cfg
        self.params = list(actor.parameters()) + list(critic.parameters())
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.lr)
        self.lr = cfg.lr
        self.total_updates = max(1, total_updates)
        self.updates = 0
        self.actor_avg: GaussianActor | None = None
        """The moving average of the actor (``actor_ema`` > 0), from the first update that moves it."""

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Normal:
        mu = self.actor.forward(obs)
        return torch.distributions.Normal(mu, self.actor.log_std.exp().expand_as(mu))

    @torch.no_grad()
    def act(self, obs: torch.Tensor, critic_obs: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Sample actions ``[N, act_dim]``; also their log-probabilities, the values, mu and sigma."""
        dist = self.distribution(obs)
        noise = torch.randn(dist.mean.shape, generator=generator).to(dist.mean)
        actions = dist.mean + dist.stddev * noise
        return {
            "actions": actions,
            "log_probs": dist.log_prob(actions).sum(-1),
            "values": self.critic(critic_obs),
            "mu": dist.mean,
            "sigma": dist.stddev,
        }

    @torch.no_grad()
    def value(self, critic_obs: torch.Tensor) -> torch.Tensor:
        return self.critic(critic_obs)

    def backward(self, mb: dict[str, torch.Tensor], warmup: bool = False) -> dict[str, torch.Tensor]:
        """Gradients of the PPO loss on one minibatch (``mb``: the storage's flat tensors ``[B, ...]``)
        into the parameters' ``.grad``. Under torchrun the minibatch is every rank's together: the
        advantages are standardised over all of them, the gradients averaged (equal ``B`` on every
        rank: the gradient of the mean loss over the combined batch) and the KL is the ranks' mean.
        ``warmup``: the critic's loss only. Returns the detached loss terms and the KL."""
        cfg = self.cfg
        dist = self.distribution(mb["obs"])
        log_prob = dist.log_prob(mb["actions"]).sum(-1)
        entropy = dist.entropy().sum(-1).mean()
        kl = distributed.mean(gaussian_kl(mb["mu"], mb["sigma"], dist.mean, dist.stddev).mean().detach())
        adv = distributed.standardize(mb["advantages"])
        surr = surrogate_loss(log_prob, mb["log_probs"], adv, cfg.clip)
        vloss = value_loss(self.critic(mb["critic_obs"]), mb["values"], mb["returns"], cfg.clip)
        loss = cfg.value_coef * vloss
        if not warmup:
            loss = loss + surr - cfg.entropy_coef * entropy
        self.optimizer.zero_grad()
        loss.backward()
        distributed.average_gradients_(self.params)
        return {"surrogate": surr.detach(), "value": vloss.detach(), "entropy": entropy.detach(), "kl": kl}

    def update(self, storage: RolloutStorage, generator: torch.Generator) -> dict[str, float]:
        cfg = self.cfg
        # Loss terms summed on the device (float64) and read once per update, not per minibatch.
        sums: dict[str, torch.Tensor | float] = {"surrogate": 0.0, "value": 0.0, "entropy": 0.0, "kl": 0.0}
        n = 0
        warmup = self.updates < cfg.critic_warmup  # the critic only
        if cfg.actor_ema > 0 and not warmup and self.actor_avg is None:
            self.actor_avg = copy.deepcopy(self.actor)
        for mb in storage.minibatches(cfg.minibatches, cfg.epochs, generator):
            parts = self.backward(mb, warmup)
            if cfg.schedule == "adaptive" and not warmup:
                # The KL is every rank's mean (``backward``): each rank decides the same rate.
                if parts["kl"] > 2 * cfg.desired_kl:
                    self.lr = max(1e-5, self.lr / 1.5)
                elif parts["kl"] < cfg.desired_kl / 2:
                    self.lr = min(1e-2, self.lr * 1.5)
                for g in self.optimizer.param_groups:
                    g["lr"] = self.lr
            nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
            self.optimizer.step()
            for k, v in parts.items():
                sums[k] = sums[k] + v.to(torch.float64)
            n += 1
        self.updates += 1
        if self.actor_avg is not None and not warmup:
            average_into(self.actor_avg, self.actor, cfg.actor_ema)
        if cfg.schedule == "linear":
            self.lr = cfg.lr * max(0.0, 1 - self.updates / self.total_updates)
            for g in self.optimizer.param_groups:
                g["lr"] = self.lr
        out = {k: float(v) / n for k, v in sums.items()}
        out["lr"] = self.lr
        out["std"] = float(self.actor.log_std.detach().exp().mean())
        if not all(math.isfinite(v) for v in out.values()):
            raise FloatingPointError(f"PPO update produced non-finite values: {out}")
        return out
