"""The distillation losses: the action loss toward the teacher, the relational alignment of role
embeddings (pairwise cosine-similarity matrices), and random-shift image augmentation."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from agents.actor import GaussianActor


def action_loss(
    kind: str, mu_s: torch.Tensor, log_std_s: torch.Tensor, mu_t: torch.Tensor, log_std_t: torch.Tensor
) -> torch.Tensor:
    """``mse``: mean over samples of ``sum_a (mu_s - mu_t)^2``; ``kl``: mean over samples of
    ``KL(N(mu_t, std_t) || N(mu_s, std_s))`` summed over action dimensions."""
    if kind == "mse":
        return ((mu_s - mu_t) ** 2).sum(-1).mean()
    if kind == "kl":
        var_s, var_t = torch.exp(2 * log_std_s), torch.exp(2 * log_std_t)
        kl = log_std_s - log_std_t + (var_t + (mu_t - mu_s) ** 2) / (2 * var_s) - 0.5
        return kl.sum(-1).mean()
    raise ValueError(f"loss must be 'mse' or 'kl', got {kind!r}")


def cosine_matrix(x: torch.Tensor) -> torch.Tensor:
    """``[..., R, D]`` -> pairwise cosine similarities ``[..., R, R]``."""
    x = F.normalize(x, dim=-1, eps=1e-6)
    return x @ x.transpose(-1, -2)


def alignment_loss(student_roles: torch.Tensor, teacher_roles: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the off-diagonal pairwise cosine similarities of the student's
    and the teacher's role embeddings (``[..., R, Ds]`` and ``[..., R, Dt]``; sizes may differ)."""
    cs, ct = cosine_matrix(student_roles), cosine_matrix(teacher_roles)
    R = cs.shape[-1]
    off = ~torch.eye(R, dtype=torch.bool, device=cs.device)
    return ((cs - ct)[..., off] ** 2).mean()


def teacher_role_embeddings(teacher: GaussianActor, obs: torch.Tensor, roles: int) -> torch.Tensor:
    """The EgoPush teacher's per-role embeddings ``[N, roles, hidden]`` from its ``privileged``
    observation ``[N, D]``: role ``r`` is keypoint group ``r`` (12 values: four corners x (x, y,
    visible)), except the last role, which pools every obstacle group (groups ``2 .. G - 2``;
    group ``G - 1`` is the reference), and is zero in a task without obstacles."""
    w = teacher.net[0].weight  # [H, D]
    x = teacher.norm(obs.float())
    n_groups = (teacher.obs_dim - 5) // 12
    per_group = [x[:, 12 * g : 12 * g + 12] @ w[:, 12 * g : 12 * g + 12].T for g in range(n_groups)]
    if roles != 3 or n_groups < 3:
        raise ValueError(f"role alignment expects 3 roles and an EgoPush teacher; got {roles} roles, {n_groups} groups")
    if n_groups > 3:
        obstacles = torch.stack(per_group[2 : n_groups - 1]).mean(0)
    else:
        obstacles = torch.zeros_like(per_group[0])
    return torch.stack((per_group[0], per_group[1], obstacles), 1)


def random_shift(img: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each sequence of ``img`` ``[B, T, C, H, W]`` by the same random offset in
    ``[-pad, pad]`` pixels (edges replicated)."""
    B, T, C, H, W = img.shape
    x = F.pad(img.flatten(1, 2).float(), (pad, pad, pad, pad), mode="replicate")
    off = torch.randint(0, 2 * pad + 1, (B, 2), generator=generator)
    return torch.stack([x[b, :, oy : oy + H, ox : ox + W] for b, (oy, ox) in enumerate(off.tolist())]).view(
        B, T, C, H, W
    )


# -- buffer -----------------------------------------------------------------------------------------
