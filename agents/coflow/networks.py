"""CoFlow's networks: a temporal 1-D U-Net shared across agents, with Coordinated Velocity Attention
(CVA) across the agent axis, and the inverse-dynamics (and BC) MLPs.

Every layer but CVA works on each agent's trajectory alone (agents folded into the batch), so
with every CVA gate at 0 an agent's output depends on its own inputs only: training starts from
independent agents and learns how much to coordinate, layer by layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from agents.coflow.config import CoFlowConfig


def sinusoidal(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features ``[N, dim]`` of times ``x`` ``[N]`` in [0, 1] (scaled by 1000 as in DDPM,
    so that small time differences are resolved)."""
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=x.device, dtype=torch.float32) / half)
    arg = 1000.0 * x.float()[:, None] * freq[None]
    return torch.cat((arg.sin(), arg.cos()), -1)


class ConvBlock(nn.Module):
    """Conv1d (same length) -> GroupNorm -> Mish on ``[N, C, T]``."""

    def __init__(self, cin: int, cout: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, padding=kernel // 2)
        self.norm = nn.GroupNorm(groups, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.mish(self.norm(self.conv(x)))


class ResBlock(nn.Module):
    """Two conv blocks with the embedding applied between them by FiLM (scale and shift)."""

    def __init__(self, cin: int, cout: int, emb_dim: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.block1 = ConvBlock(cin, cout, kernel, groups)
        self.block2 = ConvBlock(cout, cout, kernel, groups)
        self.film = nn.Linear(emb_dim, 2 * cout)
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """``x`` ``[N, cin, T]``, ``emb`` ``[N, emb_dim]`` -> ``[N, cout, T]``."""
        scale, shift = self.film(F.mish(emb)).unsqueeze(-1).chunk(2, dim=1)
        h = self.block1(x) * (1 + scale) + shift
        return self.block2(h) + self.skip(x)


class CVA(nn.Module):
    """Coordinated Velocity Attention: attention across agents, added through a scalar gate.

    At each time step of each sample the agents are the tokens and the channels their features;
    Q, K and V come from one projection shared by every agent (so the layer is the same for any
    agent order) with the embedding added first, as the velocity depends on the noise level. The
    output is ``x + alpha * gamma * attn(x)``: ``gamma`` is learnt and starts at 0, ``alpha`` is
    the inference-time dose (1 in training).

    Attending per time step (features = channels) rather than over whole trajectories (features =
    channels x time, as the released code does) keeps the projections ``C x 3C`` instead of
    ``CT x 3CT``: at the bottleneck of the CPU-sized model 8x fewer parameters.
    """

    def __init__(self, channels: int, heads: int, emb_dim: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(channels)
        self.emb = nn.Linear(emb_dim, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, emb: torch.Tensor, n_agents: int, alpha: float = 1.0) -> torch.Tensor:
        """``x`` ``[B*A, C, T]`` (agents folded into the batch), ``emb`` ``[B*A, E]`` -> same shape."""
        BA, C, T = x.shape
        B, A = BA // n_agents, n_agents
        tokens = x.view(B, A, C, T).permute(0, 3, 1, 2)  # [B, T, A, C]
        h = self.norm(tokens) + self.emb(F.mish(emb)).view(B, 1, A, C)
        q, k, v = self.qkv(h).view(B, T, A, 3, self.heads, C // self.heads).permute(3, 0, 1, 4, 2, 5)
        att = F.scaled_dot_product_attention(q, k, v)  # [B, T, heads, A, C/heads]
        att = self.out(att.permute(0, 1, 3, 2, 4).reshape(B, T, A, C))
        return x + (alpha * self.gamma) * att.permute(0, 2, 3, 1).reshape(BA, C, T)


class TemporalUNet(nn.Module):
    """u(z, r, t | return): the velocity of every agent's observation trajectory.

    Levels of channels ``width * dim_mults``, two ``ResBlock``s each, the time axis halved between
    levels; the way up uses every level's skip connection, each passed through its own CVA (and the
    bottleneck through one more) when ``cfg.cva``.
    """

    def __init__(self, obs_dim: int, cfg: CoFlowConfig) -> None:
        super().__init__()
        E, k, g = cfg.emb_dim, cfg.kernel, cfg.groups
        chans = [cfg.width * m for m in cfg.dim_mults]
        self.alpha = 1.0
        self.time_mlp = nn.Sequential(nn.Linear(2 * E, 2 * E), nn.Mish(), nn.Linear(2 * E, E))
        self.return_mlp = nn.Sequential(nn.Linear(1, E), nn.Mish(), nn.Linear(E, E))
        self.down = nn.ModuleList()
        self.pools = nn.ModuleList()
        cin = obs_dim
        for i, c in enumerate(chans):
            self.down.append(nn.ModuleList([ResBlock(cin, c, E, k, g), ResBlock(c, c, E, k, g)]))
            last = i == len(chans) - 1
            self.pools.append(nn.Identity() if last else nn.Conv1d(c, c, 3, stride=2, padding=1))
            cin = c
        self.mid = nn.ModuleList([ResBlock(cin, cin, E, k, g), ResBlock(cin, cin, E, k, g)])
        self.up = nn.ModuleList()
        self.unpools = nn.ModuleList()
        for i, c in reversed(list(enumerate(chans))):
            below = chans[i - 1] if i > 0 else chans[0]
            self.up.append(nn.ModuleList([ResBlock(cin + c, below, E, k, g), ResBlock(below, below, E, k, g)]))
            self.unpools.append(nn.ConvTranspose1d(below, below, 4, stride=2, padding=1) if i > 0 else nn.Identity())
            cin = below
        self.final = nn.Sequential(ConvBlock(cin, cin, k, g), nn.Conv1d(cin, obs_dim, 1))
        self.skip_cva = nn.ModuleList([CVA(c, cfg.cva_heads, E) for c in chans]) if cfg.cva else None
        self.mid_cva = CVA(chans[-1], cfg.cva_heads, E) if cfg.cva else None

    def gates(self) -> list[nn.Parameter]:
        """Every CVA gate gamma (bottleneck last); empty without CVA."""
        if self.mid_cva is None:
            return []
        return [m.gamma for m in self.skip_cva] + [self.mid_cva.gamma]

    def embed(self, r: torch.Tensor, t: torch.Tensor, returns: torch.Tensor | None, keep: torch.Tensor | None):
        """Per-agent embedding ``[B, A, E]`` of times ``r``, ``t`` ``[B]`` and ``returns`` ``[B, A]``
        (scaled); ``keep`` ``[B]`` (1: conditioned, 0: condition dropped) multiplies the return's part."""
        E = self.return_mlp[0].out_features
        time = self.time_mlp(torch.cat((sinusoidal(t, E), sinusoidal(r, E)), -1))[:, None]
        if returns is None:
            return time
        ret = self.return_mlp(returns.unsqueeze(-1))
        if keep is not None:
            ret = ret * keep.view(-1, 1, 1).to(ret)
        return time + ret

    def forward(
        self,
        z: torch.Tensor,
        r: torch.Tensor,
        t: torch.Tensor,
        returns: torch.Tensor | None = None,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``z`` ``[B, H, A, D]``, times ``r <= t`` ``[B]``, ``returns`` ``[B, A]`` (None: unconditional),
        ``keep`` ``[B]`` -> the averaged velocity ``[B, H, A, D]``."""
        B, H, A, D = z.shape
        emb = self.embed(r, t, returns, keep).expand(B, A, -1).reshape(B * A, -1)
        x = z.permute(0, 2, 3, 1).reshape(B * A, D, H)
        skips = []
        for i, ((res1, res2), pool) in enumerate(zip(self.down, self.pools, strict=True)):
            x = res2(res1(x, emb), emb)
            skips.append(self.skip_cva[i](x, emb, A, self.alpha) if self.skip_cva is not None else x)
            x = pool(x)
        x = self.mid[0](x, emb)
        if self.mid_cva is not None:
            x = self.mid_cva(x, emb, A, self.alpha)
        x = self.mid[1](x, emb)
        for (res1, res2), unpool in zip(self.up, self.unpools, strict=True):
            x = res2(res1(torch.cat((x, skips.pop()), 1), emb), emb)
            x = unpool(x)
        return self.final(x).view(B, A, D, H).permute(0, 3, 1, 2)


class AgentMLP(nn.Module):
    """A three-layer Mish MLP ``[..., A, in] -> [..., A, out]``: one shared by every agent
    (``n_agents=1``), or one per agent (weights ``[A, in, out]``, applied in one einsum)."""

    def __init__(self, din: int, hidden: int, dout: int, n_agents: int = 1) -> None:
        super().__init__()
        sizes = [din, hidden, hidden, dout]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            w = torch.empty(n_agents, a, b)
            for i in range(n_agents):
                nn.init.kaiming_uniform_(w[i].T, a=math.sqrt(5))  # nn.Linear's initialisation
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.empty(n_agents, b).uniform_(-1 / math.sqrt(a), 1 / math.sqrt(a))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.einsum("...ai,aio->...ao", x, w.expand(x.shape[-2], -1, -1)) + b.expand(x.shape[-2], -1)
            if i < len(self.weights) - 1:
                x = F.mish(x)
        return x


class InverseDynamics(nn.Module):
    """a_t = f(o_t, o_{t+1}) per agent: shared across agents (CoFlow-C) or one per agent (CoFlow-D)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, n_mlps: int = 1) -> None:
        super().__init__()
        self.mlp = AgentMLP(2 * obs_dim, hidden, act_dim, n_mlps)

    def forward(self, obs: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """``obs``, ``next_obs`` ``[..., A, D]`` (normalised) -> actions ``[..., A, act]``."""
        return self.mlp(torch.cat((obs, next_obs), -1))
