"""How an EgoPush policy's episodes end: how many boxes were in place when each episode ended,
split by success, over the same episodes ``eval.py`` plays (same seed and worlds).

    python scripts/experiments/egopush_failures.py checkpoints/egopush-line-teacher-fov --episodes 200
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import envs  # noqa: E402
from agents.evaluate import _episodes  # noqa: E402
from agents.policies import make_policy  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path, help="an EgoPush teacher or student checkpoint")
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--num-envs", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1000)
    args = ap.parse_args()
    meta = json.loads((args.checkpoint / "policy.json").read_text())
    if not meta["env"].startswith("egopush"):
        raise SystemExit(f"{args.checkpoint}: an EgoPush checkpoint is expected, this one is for {meta['env']!r}")
    cfg = {k: v for k, v in meta["env_config"].items() if k != "reward_scales"}
    env = envs.make(meta["env"], num_envs=min(args.num_envs, args.episodes), **cfg)
    policy = make_policy(str(args.checkpoint), env)
    ends: collections.Counter[tuple[bool, int]] = collections.Counter()

    def count(w: int, info: dict) -> None:
        ends[(bool(info["success"][w]), int(info["placed"][w]))] += 1

    _episodes(env, policy, args.episodes, args.seed, True, count)
    print(f"{args.checkpoint}: {args.episodes} episodes, seed {args.seed}")
    print("| outcome | boxes in place at the end | episodes |\n|---|---:|---:|")
    for (success, placed), n in sorted(ends.items(), key=lambda kv: (not kv[0][0], kv[0][1])):
        print(f"| {'success' if success else 'timeout'} | {placed} of {env.n_placed} | {n} |")


if __name__ == "__main__":
    main()
