"""Where an EgoPush student acts unlike its teacher: the action gap (sum over the two action
dimensions of the squared difference of the action means) on the student's own states, split by
what the teacher knows of the active box and of the reference (in view now, only remembered, or
unknown), by stage, and by which box is being placed, with the mean actions of both in each split.
For a student with ``head=teacher`` (which acts through its estimate of the teacher's observation)
a second table says how right that estimate is, per keypoint group: how often it gets the group's
shown flags right, and the error of its centre (metres, robot frame) where the teacher is shown it.

    python scripts/experiments/egopush_gap.py runs/egopush-line-student-map-fov_gated-s0/checkpoint \
        --teacher checkpoints/egopush-line-teacher-fov_gated --steps 300
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
from distill.egopush.probes import estimate_errors
from distill.teacher_env import load_teacher


@dataclasses.dataclass(frozen=True)
class EgoPushGapConfig:
    """Where an EgoPush student acts unlike its teacher."""

    checkpoint: tyro.conf.Positional[Path]
    """An EgoPush student checkpoint."""
    teacher: Path
    """The teacher it was distilled from."""
    steps: int = 300
    """Control steps of every world."""
    num_envs: int = 64
    """Worlds played at once."""
    seed: int = 1000
    """Seed of the env."""


def main(cfg: EgoPushGapConfig) -> None:
    torch.set_num_threads(1)
    try:
        meta = read_meta(cfg.checkpoint)
    except CheckpointError as err:
        raise SystemExit(f"checkpoint: {err}") from None
    if meta.get("kind") != "student" or not meta["env"].startswith("egopush"):
        raise SystemExit(f"{cfg.checkpoint}: expected an EgoPush student checkpoint")
    env = envs.make(meta["env"], num_envs=cfg.num_envs, **meta["env_config"])
    student = make_policy(cfg.checkpoint, env)
    teacher, _ = load_teacher(cfg.teacher, meta["env"])
    estimates: list[torch.Tensor] = []
    est_stats: dict[str, list[float]] = collections.defaultdict(lambda: [0.0] * 8)
    if meta["student"].get("head") == "teacher":  # record each estimate (geometric: geometry's + the head's)
        estimate = student.student.estimate

        def recording(h: torch.Tensor) -> torch.Tensor:
            out = estimate(h)
            estimates.append(out.detach())
            return out

        student.student.estimate = recording
    obs = env.reset(seed=cfg.seed)
    gap_sum: dict[str, float] = collections.defaultdict(float)
    acts: dict[str, torch.Tensor] = collections.defaultdict(lambda: torch.zeros(5))
    for _ in range(cfg.steps):
        s = env.task_state()
        kp, _ = env._keypoint_groups(s)
        in_view = env._visibility(env.to_robot(s, kp)).any(-1)  # [W, G]
        G = kp.shape[1]
        shown = obs["privileged"][:, 0, : 12 * G].view(-1, G, 4, 3)[..., 2].amax(-1) > 0  # [W, G]
        a_s = student(obs)[:, 0]
        a_t = teacher(obs["privileged"][:, 0].float())
        if estimates:
            estimate_errors(estimates.pop(), obs["privileged"][:, 0].float(), teacher, G, in_view, est_stats)
        gap = ((a_s - a_t) ** 2).sum(-1)
        for w in range(env.num_envs):
            know = {
                g: "in view" if in_view[w, i] else ("remembered" if shown[w, i] else "unknown")
                for g, i in (("active box", 0), ("reference", -1))
            }
            stage = ("reach", "place")[int(env.stage[w]) % 2]
            box = f"box {int(s['kc'][w]) + 1} to place, active box {know['active box']}"
            keys = ("all", f"stage {stage}", f"active box {know['active box']}", f"reference {know['reference']}", box)
            for key in keys:
                gap_sum[key] += float(gap[w])
                acts[key] += torch.cat((a_t[w], a_s[w], torch.ones(1)))
        obs, _, term, trunc, _ = env.step(a_s[:, None])
        episode_done(student, term | trunc)
    env.close()
    total = acts["all"][4]
    print(f"{cfg.checkpoint} against {cfg.teacher}: {cfg.num_envs} worlds x {cfg.steps} steps, seed {cfg.seed}")
    print("| teacher knows | share of steps | action gap | teacher's mean action (fwd, turn) | student's |")
    print("|---|---:|---:|---|---|")
    for key in sorted(acts, key=lambda k: (k != "all", k)):
        n = acts[key][4]
        m = (acts[key][:4] / n).tolist()
        print(
            f"| {key} | {float(n / total):.3f} | {gap_sum[key] / float(n):.3f} | "
            f"{m[0]:+.2f}, {m[1]:+.2f} | {m[2]:+.2f}, {m[3]:+.2f} |"
        )
    if est_stats:
        print()
        print(
            "| keypoint group (head=teacher estimate) | flags right | mean centre error (m): shown "
            "| in view now | only remembered |"
        )
        print("|---|---:|---:|---:|---:|")
        for name, st in est_stats.items():
            err = [f"{st[i] / st[i + 1]:.3f}" if st[i + 1] else "-" for i in (2, 4, 6)]
            print(f"| {name} | {st[0] / max(st[1], 1):.3f} | {' | '.join(err)} |")


if __name__ == "__main__":
    main(tyro.cli(EgoPushGapConfig))
