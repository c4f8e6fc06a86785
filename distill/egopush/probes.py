"""What the EgoPush research probes (``scripts/experiments/egopush_*.py``) share: loading a 3-box
line teacher, the errors of a keypoint estimate against the teacher's true observation, a policy
wrapper counting knocked-out boxes, box corners put in the camera's order, and a teacher whose
keypoints are jittered (``egopush_jitter.py``)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from agents.policies import episode_done
from distill.teacher_env import load_teacher


def line_teacher(path: Path) -> tuple[torch.nn.Module, dict, dict]:
    """An ``egopush-line`` teacher with 3 boxes (one per role; ``ValueError`` for any other): its
    policy, its metadata and a copy of its env config."""
    teacher, meta = load_teacher(path)
    cfg = dict(meta["env_config"])
    if meta["env"] != "egopush-line" or cfg.get("n_boxes", 3) != 3:
        raise ValueError(f"{path}: expected an egopush-line teacher with 3 boxes")
    return teacher, meta, cfg


def estimate_errors(
    est: torch.Tensor,
    priv: torch.Tensor,
    teacher,
    groups: int,
    in_view: torch.Tensor,
    stats: dict[str, list[float]],
) -> None:
    """Accumulate into ``stats[group name]``, from an estimate ``est`` of the teacher's normalised
    observation and the true one ``priv`` (``[W, D]``): flags right (estimate > 0.5 against the
    teacher's flag; indices 0, 1: right, count) and the distance of the group's centre (m) in rows
    where the teacher is shown the group (sum, count): all of them (2, 3), those with the group in
    view now (``in_view`` ``[W, G]``; 4, 5) and those where it is only remembered (6, 7)."""
    raw = est * torch.sqrt(teacher.norm.var + 1e-8) + teacher.norm.mean  # back to the observation's units
    k_est = raw[:, : 12 * groups].view(-1, groups, 4, 3)
    k_true = priv[:, : 12 * groups].view(-1, groups, 4, 3)
    names = ["active box", "anchor"] + [f"obstacle {i + 1}" for i in range(groups - 3)] + ["reference"]
    for g, name in enumerate(names):
        flag_t = k_true[:, g, :, 2] > 0.5
        flag_e = k_est[:, g, :, 2] > 0.5
        st = stats[name]
        st[0] += float((flag_t == flag_e).float().sum())
        st[1] += flag_t.numel()
        shown = flag_t.all(-1)
        # Centres (the mean of the four corners): the corners' order follows the box's yaw, which no
        # image shows beyond a quarter turn, and the teacher acts alike on a reordered box.
        d = (k_est[:, g, :, :2].mean(1) - k_true[:, g, :, :2].mean(1)).norm(dim=-1)
        for i, rows in ((2, shown), (4, shown & in_view[:, g]), (6, shown & ~in_view[:, g])):
            st[i] += float(d[rows].sum())
            st[i + 1] += int(rows.sum())


class KnockCounter:
    """Wraps a policy: before each action, counts per world how often the number of boxes in place
    fell since the last control step (a placed box knocked out of place) in the current episode."""

    def __init__(self, env, policy) -> None:
        self.env, self.policy = env, policy
        self.placed = torch.zeros(env.num_envs, dtype=torch.long)
        self.knocks = torch.zeros(env.num_envs, dtype=torch.long)

    def __call__(self, obs):
        placed = self.env.placed_mask().sum(1).cpu()
        fresh = self.env.episode_length.cpu() == 0
        self.knocks = torch.where(fresh, 0, self.knocks + (placed < self.placed).long())
        self.placed = placed
        return self.policy(obs)

    def episode_done(self, done) -> None:
        episode_done(self.policy, done)


def camera_order(kp: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
    """One group's corners ``[N, 4, C]`` in the env's order for boxes of yaw ``[N]`` -> the same
    corners, corner 0 the one of the yaw taken into [-pi/4, pi/4) (a quarter turn moves corner ``i``
    to ``i + 1``, so the shift is the yaw's whole quarter turns)."""
    quarter = math.pi / 2
    turns = torch.round((yaw - (torch.remainder(yaw + quarter / 2, quarter) - quarter / 2)) / quarter).long() % 4
    out = kp.clone()
    for k in range(1, 4):
        rows = turns == k
        out[rows] = kp[rows].roll(k, 1)
    return out


CORNERS = ("true", "shift", "canonical", "centre", "current")
GROUPS = ("all", "active", "anchor", "obstacle", "reference")


def group_indices(name: str, groups: int) -> list[int]:
    """Keypoint group indices of ``name`` (one of ``GROUPS``) among ``groups``: active box, anchor,
    obstacle slots, reference."""
    return {
        "all": list(range(groups)),
        "active": [0],
        "anchor": [1],
        "obstacle": list(range(2, groups - 1)),
        "reference": [groups - 1],
    }[name]


def canonical_roll(full: torch.Tensor) -> torch.Tensor:
    """``[..., 4, 2]`` corners of squares (in order round the square, counter-clockwise) -> ``[...]``
    the count ``k`` such that corner ``k`` is the one at 0 to 90 degrees about the centre."""
    d = full - full.mean(-2, keepdim=True)
    a0 = torch.atan2(d[..., 0, 1], d[..., 0, 0])  # corner 0's angle; corner k's is a0 + k quarter turns
    return (-torch.floor(a0 / (torch.pi / 2))).long() % 4


def roll_corners(kp: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``kp`` ``[..., 4, C]`` with corner ``i`` replaced by corner ``(i + k) % 4`` (``k`` ``[...]``)."""
    idx = (torch.arange(4, device=kp.device) + k[..., None]) % 4
    return kp.gather(-2, idx[..., None].expand(*idx.shape, kp.shape[-1]))


class Jittered:
    """The teacher on its ``privileged`` group with each shown keypoint group offset by N(0, sigma^2),
    and the corners of the boxes whose yaw a camera cannot tell (the active box, the obstacles) as
    ``corners`` says (see the module's docstring)."""

    def __init__(
        self, teacher, groups: int, sigma: float, seed: int, corners: str = "true", jitter: str = "all"
    ) -> None:
        if corners not in CORNERS:
            raise ValueError(f"corners must be one of {CORNERS}, got {corners!r}")
        if jitter not in GROUPS:
            raise ValueError(f"jitter must be one of {GROUPS}, got {jitter!r}")
        self.teacher, self.groups, self.sigma, self.corners = teacher, groups, sigma, corners
        self.jittered = torch.zeros(groups, 1, 1)  # 1 for the groups that get offsets
        self.jittered[group_indices(jitter, groups)] = 1.0
        self.gen = torch.Generator().manual_seed(seed)
        self.boxes = group_indices("active", groups) + group_indices("obstacle", groups)  # yaw unseen

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        p = obs["privileged"].float().clone()  # [W, 1, D]
        kp = p[..., : 12 * self.groups].reshape(*p.shape[:-1], self.groups, 4, 3).clone()
        if self.corners != "true":
            b = self.boxes
            box = kp[..., b, :, :]
            if self.corners == "current":
                now = obs["critic"].float()[..., : 12 * self.groups].reshape(*kp.shape)[..., b, :, :2]
                box = torch.cat((now * box[..., 2:3], box[..., 2:3]), -1)
            elif self.corners == "centre":
                shown = box[..., 2:3]
                mean = (box[..., :2] * shown).sum(-2, keepdim=True) / shown.sum(-2, keepdim=True).clamp(min=1)
                box = torch.cat((mean.expand_as(box[..., :2]) * shown, shown), -1)
            else:
                if self.corners == "shift":
                    k = torch.randint(0, 4, box.shape[:-2], generator=self.gen).to(p.device)
                else:  # from every corner (the critic group shows them all), as a camera sees the square
                    full = obs["critic"].float()[..., : 12 * self.groups].reshape(*kp.shape)[..., b, :, :2]
                    k = canonical_roll(full)
                box = roll_corners(box, k)
            kp[..., b, :, :] = box
        shift = torch.randn(*kp.shape[:-2], 1, 2, generator=self.gen).to(p) * self.sigma * self.jittered.to(p)
        kp[..., :2] = (kp[..., :2] + shift) * kp[..., 2:3]  # unshown corners stay at zero
        p[..., : 12 * self.groups] = kp.flatten(-3)
        return self.teacher(p)
