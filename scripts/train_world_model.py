"""Train the world model of soccer from recordings, one stage at a time.

Every stage is a run directory with its config, TensorBoard logs, ``metrics.jsonl`` and a
``checkpoint/`` the next stage starts from; Ctrl-C or SIGTERM saves at the end of the step and
``--resume`` continues (see ``distill.world_model.train``).

    python scripts/record.py --env soccer-1v1 --policy scripted --cameras rgb --episodes 64 --out data/s1v1
    python scripts/train_world_model.py --stage tokenizer --recordings data/s1v1
    python scripts/train_world_model.py --stage teacher --recordings data/s1v1 \\
        --init runs/world-model-tokenizer-s0/checkpoint
    python scripts/train_world_model.py --stage student --recordings data/s1v1 \\
        --init runs/world-model-teacher-s0/checkpoint
    torchrun --standalone --nproc_per_node 2 scripts/train_world_model.py --stage tokenizer --recordings data/s1v1

Under torchrun every process draws ``--batch`` clips of its own per step (seeded ``--seed`` + its rank)
and the gradients are averaged, so a step sees ``N x batch`` clips; rank 0 alone logs and writes; a
resume needs as many processes as the run had (``--device cuda``: each process its own GPU).
"""

from __future__ import annotations

import os

import tyro

from agents.run_state import interrupted_note
from distill.world_model.train import TrainConfig, default_run_dir, train


def main(cfg: TrainConfig) -> None:
    run_dir = default_run_dir(cfg)
    try:
        run_dir = train(cfg)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    except KeyboardInterrupt as err:
        print("\n" + interrupted_note(err, run_dir / "checkpoint"))
        raise SystemExit(130) from None
    if int(os.environ.get("RANK", 0)) == 0:  # (under torchrun, rank 0 alone reports)
        print(f"done: {run_dir / 'checkpoint'}")


if __name__ == "__main__":
    main(tyro.cli(TrainConfig))
