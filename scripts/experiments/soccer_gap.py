"""Where a soccer vision student acts unlike its teacher, and what its draws look like: the
student (team 0) plays the scripted player; on its own states the action gap (sum over the three
action dimensions of the squared difference of the action means) to the teacher's labels, split by
whether the ball is in the student's camera (any ball pixel of the segmentation image, rendered
beside its RGB for this) and by how the match ended, with the mean actions of both in each split.

    python scripts/experiments/soccer_gap.py checkpoints/soccer-1v1-student \
        --teacher checkpoints/soccer-1v1-teacher --matches 128
"""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path

import torch
import tyro

import envs
from agents.checkpoint import CheckpointError, read_meta
from agents.policies import episode_done, make_policy
from agents.rollout import TeamPolicy
from distill.teacher_env import load_teacher
from envs.soccer import SEG_CLASSES


@dataclasses.dataclass(frozen=True)
class SoccerGapConfig:
    """Where a soccer student acts unlike its teacher."""

    checkpoint: tyro.conf.Positional[Path]
    """A ``soccer-1v1`` student checkpoint."""
    teacher: Path
    """The teacher it was distilled from."""
    matches: int = 128
    """Matches in all (each world plays its share)."""
    num_envs: int = 64
    """Worlds played at once."""
    seed: int = 1000
    """Seed of the env."""


def main(cfg: SoccerGapConfig) -> None:
    torch.set_num_threads(1)
    try:
        meta = read_meta(cfg.checkpoint)
    except CheckpointError as err:
        raise SystemExit(f"checkpoint: {err}") from None
    if meta.get("kind") != "student" or meta["env"] != "soccer-1v1":
        raise SystemExit(f"{cfg.checkpoint}: expected a soccer-1v1 student checkpoint")
    cameras = tuple(dict.fromkeys((*meta["env_config"].get("cameras", ("rgb",)), "segmentation")))
    env = envs.make(meta["env"], num_envs=cfg.num_envs, **{**meta["env_config"], "cameras": cameras})
    players = TeamPolicy(make_policy(cfg.checkpoint, env), make_policy("scripted", env), 1)
    teacher, _ = load_teacher(cfg.teacher, meta["env"])
    ball = SEG_CLASSES.index("ball")
    W, quota = cfg.num_envs, -(-cfg.matches // cfg.num_envs)
    played = torch.zeros(W, dtype=torch.long)
    # Per world, the current match's steps: (ball in view, gap, teacher action, student action).
    steps: list[list[tuple[bool, float, torch.Tensor, torch.Tensor]]] = [[] for _ in range(W)]
    gap_sum: dict[str, float] = collections.defaultdict(float)
    count: dict[str, int] = collections.defaultdict(int)
    acts: dict[str, torch.Tensor] = collections.defaultdict(lambda: torch.zeros(6))
    outcomes: collections.Counter[str] = collections.Counter()
    lengths: dict[str, list[int]] = collections.defaultdict(list)
    obs = env.reset(seed=cfg.seed)
    with torch.no_grad():
        while int(played.sum()) < W * quota:
            actions = players(obs)
            a_t = teacher(obs["privileged"][:, 0].float())
            a_s = actions[:, 0]
            gap = ((a_s - a_t) ** 2).sum(-1)
            seen = (obs["segmentation"][:, 0] == ball).flatten(1).any(-1)
            for w in range(W):
                steps[w].append((bool(seen[w]), float(gap[w]), a_t[w], a_s[w]))
            obs, _, term, trunc, info = env.step(actions)
            done = term | trunc
            episode_done(players, done)
            for w in done.nonzero().flatten().tolist():
                if played[w] < quota:
                    d = int(info["score"][w, 0] - info["score"][w, 1])
                    outcome = "win" if d > 0 else ("draw" if d == 0 else "loss")
                    outcomes[outcome] += 1
                    lengths[outcome].append(len(steps[w]))
                    for s, g, t, a in steps[w]:
                        view = "ball in view" if s else "ball not in view"
                        for key in ("all", view, outcome, f"{outcome}, {view}"):
                            gap_sum[key] += g
                            count[key] += 1
                            acts[key] += torch.cat((t, a))
                    played[w] += 1
                steps[w] = []
    env.close()
    total = count["all"]
    n = sum(outcomes.values())
    print(f"{n} matches: " + ", ".join(f"{k} {outcomes[k] / n:.3f}" for k in ("win", "draw", "loss")))
    print("mean match length (steps): " + ", ".join(f"{k} {sum(v) / len(v):.0f}" for k, v in sorted(lengths.items())))
    print("| split | share of steps | action gap | teacher's mean action (fwd, side, turn) | student's |")
    print("|---|---:|---:|---|---|")
    order = ["all", "ball in view", "ball not in view"]
    for o in ("win", "draw", "loss"):
        order += [o, f"{o}, ball in view", f"{o}, ball not in view"]
    for key in order:
        if count[key] == 0:
            continue
        m = acts[key] / count[key]
        t, s = ", ".join(f"{x:+.2f}" for x in m[:3]), ", ".join(f"{x:+.2f}" for x in m[3:])
        print(f"| {key} | {count[key] / total:.3f} | {gap_sum[key] / count[key]:.3f} | {t} | {s} |")


if __name__ == "__main__":
    main(tyro.cli(SoccerGapConfig))
