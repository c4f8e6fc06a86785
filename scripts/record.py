"""Record batched rollouts of a policy into a sharded dataset (see ``envs/recording.py``).

    python scripts/record.py --env soccer-1v1 --policy scripted --episodes 64 --out data/soccer-expert
    python scripts/record.py --env egopush-line --policy scripted --episodes 100 --cameras depth_layers \\
        --out data/push-expert
    # graded offline datasets: the same player, noisier, and a random one
    python scripts/record.py --env egopush-goal --policy scripted --action-noise 0.3 --epsilon 0.2 \\
        --label medium --episodes 200 --out data/goal-medium
    python scripts/record.py --env egopush-goal --policy random --label random --episodes 200 --out data/goal-random

Ctrl-C or SIGTERM stops it: every finished episode is written and the manifest says ``interrupted``
(exit status 130 or 143); a second one while they are written drops those not yet in a shard.
"""

from __future__ import annotations

import tyro

import distill  # noqa: F401  (registers the student checkpoint kind)
from agents.record import RecordConfig, record_rollouts


def main(cfg: RecordConfig):  # noqa: ANN201
    try:
        return record_rollouts(cfg)
    except ValueError as err:  # a bad flag or checkpoint, named in the message
        raise SystemExit(str(err)) from None


if __name__ == "__main__":
    main(tyro.cli(RecordConfig))
