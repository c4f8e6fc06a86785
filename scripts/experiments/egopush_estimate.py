"""Can an EgoPush student tell where things are from its map moments alone? The teacher drives
(with action noise, so the worlds vary) while a map student's map is kept and its moments
(``--student.map-moments``) recorded beside the teacher's observation; an MLP is then fit offline
from the moments and ``proprio`` to the teacher's normalised observation, as a ``head=teacher``
student's estimator is, and scored on worlds it was not fit on: per keypoint group, the error of
the group's centre (m, robot frame) where the group is in view now and where it is only remembered.

    python scripts/experiments/egopush_estimate.py checkpoints/egopush-line-teacher-fov_gated \
        --env-overrides '{"anchor_marker": true}'
"""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path

import torch
import tyro
from tqdm import tqdm

from distill.egopush.probes import estimate_errors
from distill.students import Student, StudentConfig
from distill.teacher_env import load_teacher, make_distill_env
from envs.config import parse_overrides


@dataclasses.dataclass(frozen=True)
class EstimateConfig:
    """What an EgoPush map student's map moments tell of the teacher's observation."""

    teacher: tyro.conf.Positional[Path]
    """An EgoPush teacher checkpoint."""
    num_envs: int = 64
    """Worlds the teacher drives (the fit's and the held-out ones)."""
    steps: int = 300
    """Control steps of every world."""
    test_worlds: int = 12
    """Worlds held out for scoring."""
    updates: int = 4000
    """Adam steps of the offline fit."""
    map_gate: float = 0.3
    """The map student's ``map_gate``: its anchor channel marks the anchor only while it is centred
    within this fraction of the image half-width (``StudentConfig.map_gate``)."""
    noise: float = 0.3
    """Std of the teacher's action noise."""
    seed: int = 5
    """Seed of the env, the noise and the fit."""
    env_overrides: str = "{}"
    """More env config as JSON, over the teacher's, e.g. ``'{"anchor_marker": true}'``."""


def main(cfg: EstimateConfig) -> None:
    if not 0 < cfg.test_worlds < cfg.num_envs:
        raise SystemExit(f"--test-worlds must be in (0, --num-envs {cfg.num_envs}), got {cfg.test_worlds}")
    try:
        overrides = parse_overrides(cfg.env_overrides)
    except ValueError as err:
        raise SystemExit(f"--env-overrides {err}") from None
    torch.set_num_threads(1)
    torch.manual_seed(cfg.seed)
    teacher, meta = load_teacher(cfg.teacher)
    if not meta["env"].startswith("egopush"):
        raise SystemExit(f"{cfg.teacher}: expected an EgoPush teacher, got one of {meta['env']!r}")
    W = cfg.num_envs
    env = make_distill_env(cfg.teacher, W, **overrides)
    C, H, Wd = env.observation_spaces["depth_layers"].shape
    student_cfg = StudentConfig(memory="map", map_gate=cfg.map_gate, map_moments=True)
    student = Student("depth_layers", (C, H, Wd), 4, env.act_dim, student_cfg, env.camera_geometry())
    groups = (teacher.obs_dim - 5) // 12
    obs = env.reset(seed=cfg.seed)
    state = student.egomap.init_state(W)
    first = torch.ones(W, dtype=torch.bool)
    X, Y, V = [], [], []
    for _ in tqdm(range(cfg.steps), desc="teacher drives"):
        img, prop, priv = obs["depth_layers"][:, 0], obs["proprio"][:, 0], obs["privileged"][:, 0].float()
        state = student.egomap.step(img.float(), prop, state, first)
        X.append(torch.cat((student.memory.moments(img, state.view), prop), -1))
        Y.append(priv)
        s = env.task_state()
        kp, _ = env._keypoint_groups(s)
        V.append(env._visibility(env.to_robot(s, kp)).any(-1))
        act = (teacher(priv) + cfg.noise * torch.randn(W, env.act_dim)).clamp(-1, 1)
        obs, _, term, trunc, _ = env.step(act[:, None])
        first = term | trunc
    env.close()
    X, Y, V = torch.stack(X, 1), torch.stack(Y, 1), torch.stack(V, 1)  # [W, T, ...]
    n_tr = W - cfg.test_worlds
    Xtr, Ytr = X[:n_tr].flatten(0, 1), Y[:n_tr].flatten(0, 1)
    Xte, Yte, Vte = X[n_tr:].flatten(0, 1), Y[n_tr:].flatten(0, 1), V[n_tr:].flatten(0, 1)
    mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-3
    target = teacher.norm(Ytr).clamp(-5, 5)
    net = torch.nn.Sequential(
        torch.nn.Linear(X.shape[-1], 256), torch.nn.ELU(), torch.nn.Linear(256, 256), torch.nn.ELU()
    )
    net.append(torch.nn.Linear(256, teacher.obs_dim))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    gen = torch.Generator().manual_seed(cfg.seed)
    for _ in tqdm(range(cfg.updates), desc="offline fit"):
        b = torch.randint(len(Xtr), (256,), generator=gen)
        loss = ((net((Xtr[b] - mu) / sd) - target[b]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        est = net((Xte - mu) / sd)
        test_loss = float(((est - teacher.norm(Yte).clamp(-5, 5)) ** 2).mean())
    stats: dict[str, list[float]] = collections.defaultdict(lambda: [0.0] * 8)
    estimate_errors(est, Yte, teacher, groups, Vte, stats)
    print(
        f"{cfg.teacher}: {n_tr} worlds x {cfg.steps} steps to fit, {cfg.test_worlds} to score; "
        f"{cfg.updates} updates; held-out loss (normalised MSE) {test_loss:.3f}"
    )
    print("| keypoint group | flags right | centre error (m): in view now | only remembered |")
    print("|---|---:|---:|---:|")
    for name, st in stats.items():
        cols = [f"{st[i] / st[i + 1]:.3f}" if st[i + 1] else "-" for i in (4, 6)]
        print(f"| {name} | {st[0] / st[1]:.3f} | {cols[0]} | {cols[1]} |")


if __name__ == "__main__":
    main(tyro.cli(EstimateConfig))
