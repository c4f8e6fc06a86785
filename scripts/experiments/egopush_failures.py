"""How an EgoPush policy's episodes end: how many boxes were in place when each episode ended,
split by success, over the same episodes ``eval.py`` plays (same seed and worlds); and how often
a placed box was knocked out of place during them (the number of boxes in place fell from one
control step to the next), split the same way.

    python scripts/experiments/egopush_failures.py checkpoints/egopush-line-teacher-fov --episodes 200
"""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path

import tyro

import distill  # noqa: F401  (registers the student checkpoint kind)
import envs
from agents.checkpoint import CheckpointError, read_meta
from agents.evaluate import _episodes
from agents.policies import make_policy
from distill.egopush.probes import KnockCounter


@dataclasses.dataclass(frozen=True)
class FailuresConfig:
    """How an EgoPush policy's episodes end."""

    checkpoint: tyro.conf.Positional[Path]
    """An EgoPush teacher or student checkpoint."""
    episodes: int = 200
    """Episodes in all."""
    num_envs: int = 64
    """Worlds played at once (at most ``--episodes``)."""
    seed: int = 1000
    """Seed of the env (``eval.py``'s with the same seed and worlds)."""


def main(cfg: FailuresConfig) -> None:
    try:
        meta = read_meta(cfg.checkpoint)
    except CheckpointError as err:
        raise SystemExit(f"checkpoint: {err}") from None
    if not meta["env"].startswith("egopush"):
        raise SystemExit(f"{cfg.checkpoint}: an EgoPush checkpoint is expected, this one is for {meta['env']!r}")
    env_cfg = {k: v for k, v in meta["env_config"].items() if k != "reward_scales"}
    env = envs.make(meta["env"], num_envs=min(cfg.num_envs, cfg.episodes), **env_cfg)
    policy = make_policy(str(cfg.checkpoint), env)
    ends: collections.Counter[tuple[bool, int]] = collections.Counter()
    knocks: dict[bool, list[int]] = {True: [], False: []}
    watched = KnockCounter(env, policy)

    def count(w: int, info: dict) -> None:
        ends[(bool(info["success"][w]), int(info["placed"][w]))] += 1
        knocks[bool(info["success"][w])].append(int(watched.knocks[w]))

    _episodes(env, watched, cfg.episodes, cfg.seed, True, count)
    print(f"{cfg.checkpoint}: {cfg.episodes} episodes, seed {cfg.seed}")
    print("| outcome | boxes in place at the end | episodes |\n|---|---:|---:|")
    for (success, placed), n in sorted(ends.items(), key=lambda kv: (not kv[0][0], kv[0][1])):
        print(f"| {'success' if success else 'timeout'} | {placed} of {env.n_placed} | {n} |")
    print("\n| outcome | episodes | knock-outs per episode (mean) | episodes with 2 or more |\n|---|---:|---:|---:|")
    for success in (True, False):
        k = knocks[success]
        if k:
            many = sum(x >= 2 for x in k)
            name = "success" if success else "timeout"
            print(f"| {name} | {len(k)} | {sum(k) / len(k):.2f} | {many} ({many / len(k):.0%}) |")


if __name__ == "__main__":
    main(tyro.cli(FailuresConfig))
