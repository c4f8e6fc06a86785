"""Image encoders of the vision students: a small strided CNN, and the moments of weighted points."""

from __future__ import annotations

import torch
from torch import nn


class ConvEncoder(nn.Module):
    """``[N, C, H, W]`` -> ``[N, out]``: three strided convolutions (64x64 -> 16 -> 8 -> 4, about
    1M multiply-adds per image: small enough to train on a laptop's CPU) and a linear layer."""

    def __init__(self, channels: int, size: tuple[int, int], out: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 16, 8, stride=4, padding=2),
            nn.ELU(),
            nn.Conv2d(16, 32, 4, stride=2, padding=1),
            nn.ELU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1),
            nn.ELU(),
        )
        with torch.no_grad():
            n = self.conv(torch.zeros(1, channels, *size)).numel()
        self.fc = nn.Linear(n, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.elu(self.fc(self.conv(x).flatten(1)))


def moments_of(w: torch.Tensor, z: torch.Tensor, origin: torch.Tensor, ray: torch.Tensor) -> torch.Tensor:
    """Weights ``w`` ``[N, C, P]`` over the points ``origin + z * ray`` (``z`` ``[N, C, P]`` or a
    scalar, ``origin`` ``[2]``, ``ray`` ``[P, 2]``; metres) -> per channel the mean weight, the
    weighted mean (x, y) and covariance (xx, xy, yy): ``[N, 6C]`` (zeros where a channel has no
    weight). From sums over the points by matrix products, never the ``[N, C, P, 2]`` points."""
    mass = w.sum(-1)  # [N, C]
    wz = w * z
    s1 = wz @ ray  # [N, C, 2]: sum of w z r
    rr = torch.stack((ray[:, 0] ** 2, ray[:, 0] * ray[:, 1], ray[:, 1] ** 2), -1)
    s2 = (wz * z) @ rr  # [N, C, 3]: sum of w z^2 r_i r_j
    m = mass.clamp(min=1e-6)[..., None]
    mean = origin * (mass[..., None] / m) + s1 / m  # [N, C, 2]
    o = origin
    second = torch.stack(
        [
            (o[i] * o[j] * mass[..., None] + o[i] * s1[..., j : j + 1] + o[j] * s1[..., i : i + 1])[..., 0] / m[..., 0]
            + s2[..., k] / m[..., 0]
            for k, (i, j) in enumerate(((0, 0), (0, 1), (1, 1)))
        ],
        -1,
    )
    cov = second - torch.stack((mean[..., 0] ** 2, mean[..., 0] * mean[..., 1], mean[..., 1] ** 2), -1)
    cov = cov * (mass[..., None] > 0)
    return torch.cat(((mass / w.shape[-1])[..., None], mean, cov), -1).flatten(1)
