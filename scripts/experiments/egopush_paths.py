"""Where an EgoPush policy's failed episodes went: one top-down panel per failed episode (the
robot's path, each box's path from its start, the targets where they were at the end) and, over
all episodes, how far the anchor was pushed in failures and in successes, how many ended with a
target no box fits on (against a wall), how near a wall the anchor started, and how many started with
box 1 on the anchor's side away from its target (a straight push then runs into the anchor).

Every world plays one episode from ``--seed`` (the first episode of each world in ``eval.py``'s
evaluation with the same seed and worlds).

    python scripts/experiments/egopush_paths.py checkpoints/egopush-line-teacher-fov --num-envs 256 \\
        --out docs/egopush-fov-failures.png
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import tyro

import distill  # noqa: F401  (registers the student checkpoint kind)
import envs
from agents.policies import checkpoint_env, episode_done, make_policy
from envs.egopush.scene import BOX_HALF


@dataclasses.dataclass(frozen=True)
class PathsConfig:
    """Where an EgoPush policy's failed episodes went."""

    checkpoint: tyro.conf.Positional[Path]
    """An EgoPush teacher or student checkpoint (a line or cross task)."""
    num_envs: int = 256
    """Worlds, one episode each."""
    seed: int = 1000
    """Seed of the env (the first episode of each world in ``eval.py``'s with the same seed)."""
    anchor_moved: float = 0.3
    """Metres that count as 'anchor pushed'."""
    panels: int = 12
    """Failed episodes drawn (0: no figure)."""
    out: Path = Path("egopush-failures.png")
    """Where the figure goes."""


def main(cfg: PathsConfig) -> None:
    name, env_cfg = checkpoint_env(cfg.checkpoint)
    if not name.startswith("egopush"):
        raise SystemExit(f"{cfg.checkpoint}: an EgoPush checkpoint is expected, this one is for {name!r}")
    if env_cfg.get("task") not in ("line", "cross"):
        raise SystemExit(
            f"{cfg.checkpoint}: a line or cross task is expected (its anchor is box 0), not {env_cfg.get('task')!r}"
        )
    env = envs.make(name, num_envs=cfg.num_envs, **env_cfg)
    policy = make_policy(str(cfg.checkpoint), env)
    W = env.num_envs
    obs = env.reset(seed=cfg.seed)
    robot, boxes, targets = [], [], []
    length = torch.zeros(W, dtype=torch.long)
    success = torch.zeros(W, dtype=torch.bool)
    placed = torch.zeros(W, dtype=torch.long)
    last_targets = torch.zeros(W, *env.task_state()["targets"].shape[1:])
    with torch.no_grad():
        while bool((length == 0).any()):
            s = env.task_state()
            robot.append(s["pos"].cpu().clone())
            boxes.append(s["box_pos"].cpu().clone())
            targets.append(s["targets"].cpu().clone())
            obs, _, term, trunc, info = env.step(policy(obs))
            done = (term | trunc).cpu() & (length == 0)
            episode_done(policy, term | trunc)
            length[done] = len(robot)
            success[done] = info["success"].cpu()[done]
            placed[done] = info["placed"].cpu()[done]
            last_targets[done] = targets[-1][done]
    env.close()
    robot_t, boxes_t = torch.stack(robot), torch.stack(boxes)  # [T, W, 2], [T, W, B, 2]
    idx = (length - 1).clamp(min=0)
    w_all = torch.arange(W)
    anchor_end = boxes_t[idx, w_all, 0]  # box 0 is the anchor (line and cross)
    moved = (anchor_end - boxes_t[0, :, 0]).norm(dim=-1)
    fails = (~success).nonzero().flatten().tolist()
    half = float(env_cfg.get("arena_half", 2.0))
    # A target no box fits on: its centre closer to a wall than a box's half-side.
    blocked = (last_targets.abs() > half - BOX_HALF).flatten(1).any(-1)
    wall_start = half - boxes_t[0, :, 0].abs().max(-1).values  # the anchor's start, to its nearest wall
    # Box 1 starts behind the anchor (seen from its target): a straight push runs into the anchor.
    toward = targets[0][:, 0] - boxes_t[0, :, 0]  # the anchor's start to box 1's target
    behind = ((boxes_t[0, :, 1] - boxes_t[0, :, 0]) * toward).sum(-1) < 0
    print(f"{cfg.checkpoint}: {int(success.sum())} of {W} episodes succeeded (seed {cfg.seed})")
    for label, mask in (("failed", ~success), ("succeeded", success)):
        n = int(mask.sum())
        if n:
            pushed = int((moved[mask] > cfg.anchor_moved).sum())
            print(
                f"  {label}: {n}; anchor moved > {cfg.anchor_moved} m in {pushed} ({pushed / n:.0%}), "
                f"median {float(moved[mask].median()):.2f} m"
            )
            walled = int(blocked[mask].sum())
            print(
                f"    ended with a target no box fits on (nearer a wall than {BOX_HALF} m): {walled}; "
                f"the anchor's start to its nearest wall: median {float(wall_start[mask].median()):.2f} m"
            )
            print(f"    box 1 started on the anchor's side away from its target: {int(behind[mask].sum())}")
    for p in sorted(set(placed[~success].tolist())):
        print(f"  failed with {p} box(es) in place: {int(((~success) & (placed == p)).sum())}")
    if not fails or cfg.panels <= 0:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = fails[: cfg.panels]
    cols = min(4, len(shown))
    rows = (len(shown) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(shown) :]:
        ax.axis("off")
    for ax, w in zip(axes.flat, shown, strict=False):
        L = int(length[w])
        ax.plot(robot_t[:L, w, 0], robot_t[:L, w, 1], "k-", lw=0.5, label="robot")
        ax.plot(robot_t[0, w, 0], robot_t[0, w, 1], "ko", ms=4)
        for b in range(boxes_t.shape[2]):
            label = "anchor" if b == 0 else f"box {b}"
            ax.plot(boxes_t[:L, w, b, 0], boxes_t[:L, w, b, 1], "-", lw=1.5, color=f"C{b}", label=label)
            ax.plot(boxes_t[0, w, b, 0], boxes_t[0, w, b, 1], "s", ms=6, color=f"C{b}")
        t = last_targets[w].reshape(-1, 2)
        ax.plot(t[:, 0], t[:, 1], "rx", label="targets at the end")
        ax.set_xlim(-half, half)
        ax.set_ylim(-half, half)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"world {w}: {int(placed[w])} placed, anchor {float(moved[w]):.2f} m", fontsize=8)
    axes.flat[0].legend(fontsize=6, loc="lower left")
    fig.suptitle(f"{name} {env_cfg.get('observability', '')}: failed episodes (squares: starts)", fontsize=9)
    fig.tight_layout()
    fig.savefig(cfg.out, dpi=80)
    print(f"wrote {cfg.out}")


if __name__ == "__main__":
    main(tyro.cli(PathsConfig))
