"""Rollout metrics: SSIM by hand, per-step averaging, and the side-by-side panels."""

import pytest
import torch

from distill.world_model.metrics import horizon_metrics, panels, ssim


def test_ssim_hand_worked_on_flat_images_and_one_for_identical_ones() -> None:
    a, b = torch.full((3, 16, 16), 0.5), torch.full((3, 16, 16), 0.25)
    c1 = 0.01**2
    assert ssim(a, b).item() == pytest.approx((2 * 0.5 * 0.25 + c1) / (0.5**2 + 0.25**2 + c1), rel=1e-5)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ssim(x, x), torch.ones(2))
    noisy = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    noisier = (x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert (ssim(noisier, x) < ssim(noisy, x)).all() and (ssim(noisy, x) < 1).all()


def test_horizon_metrics_per_step_and_the_copy_floor() -> None:
    real = torch.randint(0, 256, (2, 5, 3, 3, 16, 16), dtype=torch.uint8)
    gen = real.clone()
    gen[:, 4] = 255 - gen[:, 4]  # the last step is wrong, the others perfect
    m = horizon_metrics(real, gen, context=2)
    assert len(m["psnr"]) == 3 and m["psnr"][0] == float("inf") and m["psnr"][2] < 10
    assert m["ssim"][:2] == pytest.approx([1.0, 1.0]) and m["ssim"][2] < 0.5
    assert all(p < 15 for p in m["copy_psnr"])  # random frames: copying the last one is poor


def test_panels_put_real_on_top_and_a_column_per_player() -> None:
    real = torch.zeros(4, 3, 3, 8, 8, dtype=torch.uint8)
    gen = torch.full((4, 3, 3, 8, 8), 200, dtype=torch.uint8)
    real[:, 1, 0] = 255  # player 1's real view is red
    frames = panels(real, gen, scale=2)
    assert len(frames) == 4 and frames[0].shape == (32, 48, 3)
    assert frames[0][0, 16:32].tolist() == [[255, 0, 0]] * 16  # top row, second column
    assert (frames[0][16:] == 200).all()  # the bottom row is the generated frames
