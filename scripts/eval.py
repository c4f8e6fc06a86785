"""Evaluate a policy: win, draw and loss rates in soccer, success rate in EgoPush (95% CIs).

python scripts/eval.py --env soccer-1v1 --policy scripted --opponent random --episodes 200
python scripts/eval.py --env soccer-2v2 --policy random --episodes 100 --json out.json
python scripts/eval.py --checkpoint checkpoints/egopush-line-teacher-global --episodes 200
python scripts/eval.py --checkpoint checkpoints/egopush-line-student-fov_gated --blank-camera
python scripts/eval.py --checkpoint checkpoints/soccer-1v1-teacher --num-envs 64 --report   # the report seed
python scripts/eval.py --checkpoint checkpoints/egopush-line-teacher-fov_gated --env-overrides '{"memory_seconds": 5}'

A checkpoint is evaluated in the env it was trained on; a vision student's env renders its camera.
``--blank-camera`` replaces every camera image the policy is given with zeros: robustness to a
failed camera, and a measure of how much a student relies on vision. ``--env-overrides`` changes
the env's config over the checkpoint's (e.g. a memory teacher evaluated with a shorter memory).
"""

from __future__ import annotations

import tyro

import distill  # noqa: F401  (registers the student checkpoint kind)
from agents.evaluate import EvalConfig, evaluate


def main(cfg: EvalConfig) -> dict:
    try:
        return evaluate(cfg)
    except ValueError as err:  # CheckpointError is one
        raise SystemExit(str(err)) from None


if __name__ == "__main__":
    main(tyro.cli(EvalConfig))
