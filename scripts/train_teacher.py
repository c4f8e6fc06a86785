"""Train a privileged teacher with PPO on batched worlds.

Each run gets a directory (``runs/<env>-s<seed>`` by default) with the resolved config, the
TensorBoard logs (every reward term, success or win rate, env-steps/s, losses), ``metrics.jsonl``,
``checkpoint/`` (the policy, loadable by ``eval.py --policy`` and ``replay.py --checkpoint``, and the
training state) and, at the end, ``learning_curve.png``. Ctrl-C or SIGTERM saves a checkpoint at the
end of the iteration, and one is written every ``--save-every`` updates; ``--resume`` continues it,
and ends with the same weights as a run that was never interrupted. Under ``torchrun`` each process
steps ``--num-envs`` worlds of its own and rank 0 logs and saves (docs/teachers.md, "Several processes").

    python scripts/train_teacher.py --env egopush-goal --total-steps 300000
    python scripts/train_teacher.py --env egopush-line --observability fov_gated --num-envs 256
    python scripts/train_teacher.py --env egopush-goal --run-dir runs/goal --resume
    torchrun --standalone --nproc_per_node 2 scripts/train_teacher.py --env egopush-goal --num-envs 64
    tensorboard --logdir runs
"""

from __future__ import annotations

import tyro

from agents.ppo.train import TrainConfig, train


def main(cfg: TrainConfig):  # noqa: ANN201
    try:
        return train(cfg)
    except ValueError as err:  # a bad flag or checkpoint, named in the message
        raise SystemExit(str(err)) from None


if __name__ == "__main__":
    main(tyro.cli(TrainConfig))
