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

import argparse
import collections
import json
from pathlib import Path

import torch
from tqdm import tqdm

from distill.egopush.probes import estimate_errors
from distill.students import Student, StudentConfig
from distill.teacher_env import load_teacher, make_distill_env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("teacher", type=Path, help="an EgoPush teacher checkpoint")
    ap.add_argument("--num-envs", type=int, default=64)
    ap.add_argument("--steps", type=int, default=300, help="control steps of every world")
    ap.add_argument("--test-worlds", type=int, default=12, help="worlds held out for scoring")
    ap.add_argument("--updates", type=int, default=4000, help="Adam steps of the offline fit")
    ap.add_argument("--map-gate", type=float, default=0.3)
    ap.add_argument("--noise", type=float, default=0.3, help="std of the teacher's action noise")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--env-overrides", type=json.loads, default={}, help="JSON, e.g. '{\"anchor_marker\": true}'")
    args = ap.parse_args()
    if not 0 < args.test_worlds < args.num_envs:
        raise SystemExit(f"--test-worlds must be in (0, --num-envs {args.num_envs}), got {args.test_worlds}")
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    teacher, meta = load_teacher(args.teacher)
    if not meta["env"].startswith("egopush"):
        raise SystemExit(f"{args.teacher}: expected an EgoPush teacher, got one of {meta['env']!r}")
    W = args.num_envs
    env = make_distill_env(args.teacher, W, **args.env_overrides)
    C, H, Wd = env.observation_spaces["depth_layers"].shape
    cfg = StudentConfig(memory="map", map_gate=args.map_gate, map_moments=True)
    student = Student("depth_layers", (C, H, Wd), 4, env.act_dim, cfg, env.camera_geometry())
    groups = (teacher.obs_dim - 5) // 12
    obs = env.reset(seed=args.seed)
    state = student.egomap.init_state(W)
    first = torch.ones(W, dtype=torch.bool)
    X, Y, V = [], [], []
    for _ in tqdm(range(args.steps), desc="teacher drives"):
        img, prop, priv = obs["depth_layers"][:, 0], obs["proprio"][:, 0], obs["privileged"][:, 0].float()
        state = student.egomap.step(img.float(), prop, state, first)
        X.append(torch.cat((student.moments(img, state.view), prop), -1))
        Y.append(priv)
        s = env._state()
        kp, _ = env._keypoint_groups(s)
        V.append(env._visibility(env._to_robot(s, kp)).any(-1))
        act = (teacher(priv) + args.noise * torch.randn(W, env.act_dim)).clamp(-1, 1)
        obs, _, term, trunc, _ = env.step(act[:, None])
        first = term | trunc
    env.close()
    X, Y, V = torch.stack(X, 1), torch.stack(Y, 1), torch.stack(V, 1)  # [W, T, ...]
    n_tr = W - args.test_worlds
    Xtr, Ytr = X[:n_tr].flatten(0, 1), Y[:n_tr].flatten(0, 1)
    Xte, Yte, Vte = X[n_tr:].flatten(0, 1), Y[n_tr:].flatten(0, 1), V[n_tr:].flatten(0, 1)
    mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-3
    target = teacher.norm(Ytr).clamp(-5, 5)
    net = torch.nn.Sequential(
        torch.nn.Linear(X.shape[-1], 256), torch.nn.ELU(), torch.nn.Linear(256, 256), torch.nn.ELU()
    )
    net.append(torch.nn.Linear(256, teacher.obs_dim))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    gen = torch.Generator().manual_seed(args.seed)
    for _ in tqdm(range(args.updates), desc="offline fit"):
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
        f"{args.teacher}: {n_tr} worlds x {args.steps} steps to fit, {args.test_worlds} to score; "
        f"{args.updates} updates; held-out loss (normalised MSE) {test_loss:.3f}"
    )
    print("| keypoint group | flags right | centre error (m): in view now | only remembered |")
    print("|---|---:|---:|---:|")
    for name, st in stats.items():
        cols = [f"{st[i] / st[i + 1]:.3f}" if st[i + 1] else "-" for i in (4, 6)]
        print(f"| {name} | {st[0] / st[1]:.3f} | {cols[0]} | {cols[1]} |")


if __name__ == "__main__":
    main()
