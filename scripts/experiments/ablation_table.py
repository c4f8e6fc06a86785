"""Print the observability ablation table (markdown) from the runs of egopush_ablation.sh.

python scripts/experiments/ablation_table.py [--task line|goal|cross] [--memory none|gru|transformer|map|geometric]
    [--tag=-TAG] [--seeds 0 1] [--root DIR]

Runs are read from runs/egopush-TASK-student[TAG]-OBS-sSEED; the tag is "-MEMORY" unless --tag is given
(with "=", as the tag begins with a dash: --tag=-map-marker; --tag= for none).
Below each teacher's seeds, a "pooled" row: the episodes of all its seeds together (successes summed,
Wilson 95% interval), once every seed has run.
"""

import dataclasses
import json
from pathlib import Path

import tyro

from agents.evaluate import wilson_interval
from agents.run_state import read_metrics

ROOT = Path(__file__).resolve().parents[2]


def table(root: Path, task: str, tag: str, seeds: tuple[int, ...] = (0, 1)) -> str:
    """The ablation table (markdown) from ``root/runs`` and the teachers' cards in ``root/checkpoints``."""
    rows = ["| teacher | teacher success | seed | student success [95% CI] | student reach | final action gap |"]
    rows.append("|---|---|---:|---|---:|---:|")
    for obs in ("global", "fov", "fov_gated"):
        card = root / "checkpoints" / f"egopush-{task}-teacher-{obs}" / "MODEL_CARD.md"
        if not card.exists() and obs == "global":
            card = root / "checkpoints" / f"egopush-{task}-teacher" / "MODEL_CARD.md"
        teacher = "?"
        if card.exists():
            for ln in card.read_text().splitlines():  # "| 200 | success |" or "| 1000 (seed) | 200 | success |"
                cells = [c.strip() for c in ln.strip().strip("|").split("|")]
                if cells[0] == "200" or cells[:2] == ["1000", "200"]:
                    teacher = cells[1] if cells[0] == "200" else cells[2]
                    break
        wins = episodes = done = 0
        for seed in seeds:
            run = root / "runs" / f"egopush-{task}-student{tag}-{obs}-s{seed}"
            if not (run / "eval.json").exists():
                rows.append(f"| {obs} | {teacher} | {seed} | (not run) | | |")
                continue
            res = json.loads((run / "eval.json").read_text())["eval"]
            hist = read_metrics(run)
            gaps = [h["dagger/action_gap"] for h in hist if "dagger/action_gap" in h][-10:]
            lo, hi = res["success_rate_ci95"]
            wins += round(res["success_rate"] * res["episodes"])
            episodes += res["episodes"]
            done += 1
            rows.append(
                f"| {obs} | {teacher} | {seed} | {res['success_rate']:.3f} [{lo:.3f}, {hi:.3f}] "
                f"({res['episodes']} ep.) | {res['reach_rate']:.3f} | {sum(gaps) / max(1, len(gaps)):.3f} |"
            )
        if done == len(seeds) > 1:
            lo, hi = wilson_interval(wins, episodes)
            rows.append(
                f"| {obs} | {teacher} | pooled | {wins / episodes:.3f} [{lo:.3f}, {hi:.3f}] ({episodes} ep.) | | |"
            )
    return "\n".join(rows)


@dataclasses.dataclass(frozen=True)
class TableConfig:
    """Print the observability ablation table."""

    task: str = "line"
    """EgoPush task: ``line``, ``goal`` or ``cross``."""
    memory: str = "none"
    """Student memory the runs used (their tag is ``-MEMORY`` unless ``--tag``)."""
    tag: str | None = None
    """Run-name tag, e.g. ``--tag=-map`` (with ``=``, as it begins with a dash; default: from ``--memory``)."""
    seeds: tuple[int, ...] = (0, 1)
    """Training seeds of each teacher's students."""
    root: Path = ROOT
    """Folder holding ``runs/`` and ``checkpoints/``."""


def main(cfg: TableConfig) -> None:
    tag = cfg.tag if cfg.tag is not None else ("" if cfg.memory == "none" else f"-{cfg.memory}")
    print(table(cfg.root, cfg.task, tag, cfg.seeds))


if __name__ == "__main__":
    main(tyro.cli(TableConfig))
