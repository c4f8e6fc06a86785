"""The frame tokenizer: shapes, PSNR by hand, and that it can learn."""

import math

import pytest
import torch

from distill.world_model.tokenizer import Tokenizer, TokenizerConfig, psnr


def test_psnr_hand_worked() -> None:
    a = torch.zeros(2, 3, 4, 4)
    b = a.clone()
    b[0] += 0.1  # MSE 0.01 -> 20 dB
    b[1, :, :2] += 0.5  # half the pixels off by 0.5: MSE 0.125 -> 9.03 dB
    out = psnr(b, a)
    assert out[0].item() == pytest.approx(20.0, abs=1e-4)
    assert out[1].item() == pytest.approx(10 * math.log10(8), abs=1e-4)
    assert psnr(a, a).isinf().all()


def test_encode_decode_shapes_and_bad_sizes() -> None:
    tok = Tokenizer(TokenizerConfig(width=8))
    frames = torch.randint(0, 256, (2, 3, 3, 64, 64), dtype=torch.uint8)
    z = tok.encode(frames)
    assert z.shape == (2, 3, 8, 8, 8)
    assert tok.decode(z).shape == (2, 3, 3, 64, 64)
    with pytest.raises(ValueError, match="64x64"):
        tok.encode(torch.zeros(1, 3, 32, 32))


def test_a_few_steps_on_one_frame_improve_its_reconstruction() -> None:
    torch.manual_seed(0)
    tok = Tokenizer(TokenizerConfig(image_size=32, width=8, latent_channels=4))
    frame = torch.zeros(1, 3, 32, 32)
    frame[:, 0, 8:24, 8:24] = 1.0  # a red square on black
    before = psnr(tok.decode(tok.encode(frame)), frame).item()
    opt = torch.optim.Adam(tok.parameters(), lr=1e-2)
    for _ in range(12):
        opt.zero_grad()
        tok.loss(frame).backward()
        opt.step()
    after = psnr(tok.decode(tok.encode(frame)), frame).item()
    assert after > before + 3, (before, after)
