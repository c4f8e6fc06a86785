"""How close a dream stays to the real match: image metrics per horizon step, and the panels that
show it.

A rollout is compared with the real frames that the same actions produced (held-out recordings):
PSNR and SSIM of every generated frame against the real one, averaged over clips and players, per
step after the context. The same numbers for "copy the last context frame" are the floor a model
that learnt nothing of the dynamics already reaches.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from distill.world_model.student import Student
from distill.world_model.tokenizer import Tokenizer, psnr


def _gaussian(size: int = 7, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor, size: int = 7) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004; Gaussian window ``size``, sigma 1.5, constants
    for a data range of 1) of images ``[..., C, H, W]`` in [0, 1] or uint8, averaged over
    channels and pixels: one value per image ``[...]``; 1 for identical images."""
    p, t = Tokenizer.to_float(pred), Tokenizer.to_float(target)
    lead, (C, H, W) = p.shape[:-3], p.shape[-3:]
    p, t = p.reshape(-1, C, H, W), t.reshape(-1, C, H, W)
    g = _gaussian(size).to(p.device)
    kernel = (g[:, None] * g[None, :]).expand(C, 1, size, size)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, kernel, groups=C)  # valid windows only, as the reference implementation

    mp, mt = blur(p), blur(t)
    vp, vt, cov = blur(p * p) - mp**2, blur(t * t) - mt**2, blur(p * t) - mp * mt
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mp * mt + c1) * (2 * cov + c2)) / ((mp**2 + mt**2 + c1) * (vp + vt + c2))
    return s.flatten(1).mean(1).view(lead)


def held_still(real: torch.Tensor, context: int) -> torch.Tensor:
    """The last context frame of clips ``real`` ``[B, T, A, ...]`` held over every later step:
    ``[B, T - context, A, ...]``, the floor a model that learnt no dynamics already reaches."""
    return real[:, context - 1 : context].expand(-1, real.shape[1] - context, *real.shape[2:])


def horizon_metrics(real: torch.Tensor, generated: torch.Tensor, context: int) -> dict[str, list[float]]:
    """PSNR (dB) and SSIM per step after ``context`` of ``generated`` against ``real`` frames
    ``[B, T, A, 3, H, W]``, averaged over clips and players; and both for copying the last context
    frame (``copy_psnr``, ``copy_ssim``)."""
    real_h, gen_h = real[:, context:], generated[:, context:]
    copy = held_still(real, context)
    out = {}
    for name, fn in (("psnr", psnr), ("ssim", ssim)):
        out[name] = fn(gen_h, real_h).mean((0, 2)).tolist()
        out[f"copy_{name}"] = fn(copy, real_h).mean((0, 2)).tolist()
    return out


@torch.no_grad()
def dream_clips(
    student: Student,
    tok: Tokenizer,
    frames: torch.Tensor,
    actions: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Generated frames uint8 ``[B, T, A, 3, H, W]`` of clips ``frames`` (uint8, same shape) from
    their first ``student.context_frames`` frames and every step's ``actions`` ``[B, T, A, act_dim]``;
    the context frames are the real ones."""
    c = student.context_frames
    latents = student.rollout(tok.encode(frames[:, :c]), actions, generator)
    gen = (tok.decode(latents[:, c:]) * 255).round().to(torch.uint8)
    return torch.cat((frames[:, :c], gen), 1)


def panels(real: torch.Tensor, generated: torch.Tensor, scale: int = 2) -> list[np.ndarray]:
    """Video frames of one clip (``[T, A, 3, H, W]`` each): real players' views on the top row,
    generated ones below, a column per player, each ``scale`` times larger."""
    both = torch.stack((real, generated), 1)  # [T, 2, A, 3, H, W]
    T, R, A, C, H, W = both.shape
    grid = both.permute(0, 1, 4, 2, 5, 3).reshape(T, R * H, A * W, C)  # rows: real / generated
    grid = grid.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    return [g.numpy() for g in grid]
