"""Distil a privileged teacher into an egocentric vision student with DAgger.

The env, its world and the teacher's observability come from the teacher's checkpoint; the
student sees only its camera (``depth_layers`` for EgoPush, RGB for soccer) and ``proprio``.
Each run gets a directory (``runs/<env>-student[-<observability>]-s<seed>`` by default) with the
resolved config, TensorBoard logs, ``metrics.jsonl``, ``checkpoint/`` (a policy ``eval.py
--checkpoint`` evaluates) and, at the end, ``learning_curve.png`` and a ``MODEL_CARD.md``.
Ctrl-C or SIGTERM saves a checkpoint at the end of the iteration; ``--resume`` continues it (with
an empty buffer: it refills).

    python scripts/distill_student.py --teacher checkpoints/egopush-line-teacher-fov_gated
    python scripts/distill_student.py --teacher checkpoints/egopush-line-teacher-global --student.memory gru
    python scripts/distill_student.py --teacher runs/soccer-1v1-s0/checkpoint --total-frames 100000
"""

from __future__ import annotations

import tyro

from distill.train import DistillConfig, distill


def main(cfg: DistillConfig):  # noqa: ANN201
    try:
        return distill(cfg)
    except ValueError as err:  # a bad flag or checkpoint, named in the message
        raise SystemExit(str(err)) from None


if __name__ == "__main__":
    main(tyro.cli(DistillConfig))
