"""Print the observability ablation table (markdown) from the runs of egopush_ablation.sh.

python scripts/experiments/ablation_table.py [--task line|goal|cross] [--memory none|gru|transformer|map] [--tag -TAG]

Runs are read from runs/egopush-TASK-student[TAG]-OBS-sSEED; the tag is "-MEMORY" unless --tag is given.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    task = sys.argv[sys.argv.index("--task") + 1] if "--task" in sys.argv else "line"
    memory = sys.argv[sys.argv.index("--memory") + 1] if "--memory" in sys.argv else "none"
    tag = "" if memory == "none" else f"-{memory}"
    if "--tag" in sys.argv:
        tag = sys.argv[sys.argv.index("--tag") + 1]
    rows = ["| teacher | teacher success | seed | student success [95% CI] | student reach | final action gap |"]
    rows.append("|---|---|---:|---|---:|---:|")
    for obs in ("global", "fov", "fov_gated"):
        card = ROOT / "checkpoints" / f"egopush-{task}-teacher-{obs}" / "MODEL_CARD.md"
        if not card.exists() and obs == "global":
            card = ROOT / "checkpoints" / f"egopush-{task}-teacher" / "MODEL_CARD.md"
        teacher = "?"
        if card.exists():
            for ln in card.read_text().splitlines():  # "| 200 | success |" or "| 1000 (seed) | 200 | success |"
                cells = [c.strip() for c in ln.strip().strip("|").split("|")]
                if cells[0] == "200" or cells[:2] == ["1000", "200"]:
                    teacher = cells[1] if cells[0] == "200" else cells[2]
                    break
        for seed in (0, 1):
            run = ROOT / "runs" / f"egopush-{task}-student{tag}-{obs}-s{seed}"
            if not (run / "eval.json").exists():
                rows.append(f"| {obs} | {teacher} | {seed} | (not run) | | |")
                continue
            res = json.loads((run / "eval.json").read_text())["eval"]
            hist = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
            gaps = [h["dagger/action_gap"] for h in hist if "dagger/action_gap" in h][-10:]
            lo, hi = res["success_rate_ci95"]
            rows.append(
                f"| {obs} | {teacher} | {seed} | {res['success_rate']:.3f} [{lo:.3f}, {hi:.3f}] "
                f"({res['episodes']} ep.) | {res['reach_rate']:.3f} | {sum(gaps) / max(1, len(gaps)):.3f} |"
            )
    print("\n".join(rows))


if __name__ == "__main__":
    sys.exit(main())
