"""Frames to latent grids and back: a small convolutional autoencoder.

64x64 RGB frames become 8x8xC latents with ``C = 8`` by default: three stride-2 stages (8x fewer
rows and columns, as gamma-World's video tokenizer), 24x fewer numbers than the frame. gamma-World's
pretrained tokenizer keeps 16 channels but also packs 4 frames into one latent frame (48x); ours
packs no time (a latent frame is a video frame, so a block of the student is a few real frames),
so it keeps fewer channels for a similar bit budget per frame, but not so few that a ball a few
pixels wide vanishes. The transformer's cost depends on the number of tokens, not on C.

Latents are divided by ``scale`` (a buffer set from data with ``fit_scale``) so that the world
model sees roughly unit variance, which its flow-matching noise assumes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class TokenizerConfig:
    """Shape of the autoencoder."""

    image_size: int = 64
    """Frames are square ``image_size`` pixels, RGB."""
    latent_channels: int = 8
    """C of the latent grid (see the module docstring for why 8)."""
    width: int = 32
    """Channels of the first stage; each stage doubles them."""
    stages: int = 3
    """Stride-2 stages: the latent grid is ``image_size / 2**stages`` on a side."""

    def __post_init__(self) -> None:
        for name in ("image_size", "latent_channels", "width", "stages"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.image_size % 2**self.stages:
            raise ValueError(f"image_size {self.image_size} must divide by 2**stages = {2**self.stages}")

    @property
    def latent_size(self) -> int:
        return self.image_size // 2**self.stages


def _res(ch: int) -> nn.Module:
    return nn.Sequential(nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1))


class Tokenizer(nn.Module):
    """``encode``: frames ``[..., 3, H, W]`` (uint8, or float in [0, 1]) -> latents ``[..., C, h, w]``;
    ``decode``: latents -> float frames in [0, 1]."""

    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        chans = [cfg.width * 2**i for i in range(cfg.stages)]
        enc: list[nn.Module] = [nn.Conv2d(3, chans[0], 3, padding=1)]
        for i, ch in enumerate(chans):
            out = chans[min(i + 1, len(chans) - 1)]
            enc += [_res(ch), nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, out, 4, stride=2, padding=1)]
        enc += [nn.GroupNorm(8, chans[-1]), nn.SiLU(), nn.Conv2d(chans[-1], cfg.latent_channels, 1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, chans[-1], 3, padding=1)]
        for i, ch in reversed(list(enumerate(chans))):
            inp = chans[min(i + 1, len(chans) - 1)]
            dec += [_res(inp), nn.GroupNorm(8, inp), nn.SiLU(), nn.ConvTranspose2d(inp, ch, 4, stride=2, padding=1)]
        dec += [nn.GroupNorm(8, chans[0]), nn.SiLU(), nn.Conv2d(chans[0], 3, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        self.register_buffer("scale", torch.ones(()))

    @staticmethod
    def to_float(frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames to float in [0, 1] (float frames pass through)."""
        return frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()

    def _flat(self, x: torch.Tensor, ch: int) -> tuple[torch.Tensor, tuple[int, ...]]:
        if x.dim() < 4 or x.shape[-3] != ch:
            raise ValueError(f"expected [..., {ch}, H, W], got {tuple(x.shape)}")
        return x.reshape(-1, *x.shape[-3:]), tuple(x.shape[:-3])

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames ``[..., 3, H, W]`` -> scaled latents ``[..., C, H/8, W/8]``."""
        x, lead = self._flat(self.to_float(frames), 3)
        if x.shape[-1] != self.cfg.image_size or x.shape[-2] != self.cfg.image_size:
            raise ValueError(f"frames must be {self.cfg.image_size}x{self.cfg.image_size}, got {tuple(x.shape[-2:])}")
        z = self.encoder(x * 2 - 1) / self.scale
        return z.view(*lead, *z.shape[1:])

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents ``[..., C, h, w]`` -> frames ``[..., 3, H, W]`` in [0, 1]."""
        z, lead = self._flat(latents, self.cfg.latent_channels)
        x = (self.decoder(z * self.scale) + 1) / 2
        return x.clamp(0, 1).view(*lead, *x.shape[1:])

    def loss(self, frames: torch.Tensor) -> torch.Tensor:
        """Reconstruction loss (MSE in [0, 1] pixels, before clamping) of frames ``[..., 3, H, W]``."""
        x = self.to_float(frames).reshape(-1, 3, self.cfg.image_size, self.cfg.image_size)
        z = self.encoder(x * 2 - 1)
        return F.mse_loss((self.decoder(z) + 1) / 2, x)

    @torch.no_grad()
    def fit_scale(self, frames: torch.Tensor) -> float:
        """Set ``scale`` to the standard deviation of the raw latents of ``frames``; returns it."""
        self.scale.fill_(1.0)
        self.scale.fill_(float(self.encode(frames).std()) or 1.0)
        return float(self.scale)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of images in [0, 1] (or uint8), one value per image:
    ``[..., 3, H, W]`` -> ``[...]``. Identical images give ``inf``."""
    p, t = Tokenizer.to_float(pred), Tokenizer.to_float(target)
    mse = (p - t).pow(2).flatten(-3).mean(-1)
    return 10 * torch.log10(1.0 / mse) if mse.numel() else mse


def psnr_of_mse(mse: float) -> float:
    """PSNR in dB of a mean squared error of [0, 1] images."""
    return math.inf if mse <= 0 else 10 * math.log10(1.0 / mse)
