"""The CoFlow results table (markdown) from the evaluation JSONs that ``coflow_cpu_results.sh``
writes: one row per algorithm and dataset, the mean and standard deviation over training seeds of
each seed's mean return (``eval.py``, 100 episodes each), each seed's figure, success (soccer: the win
rate), landmark coverage and the dataset's own mean return (``make_dataset.py``'s ``datasets.json``); then the rows
of the ``k`` sweep and the ``alpha`` dose-response (``eval_coflow.py``'s JSONs), where present.

    python scripts/experiments/coflow_table.py --results runs/results --datasets data/datasets.json
"""

from __future__ import annotations

import dataclasses
import json
import re
import statistics
from pathlib import Path

import tyro

NAME = re.compile(r"r-(?P<algo>[a-z-]+?)-(?P<quality>expert|medium-replay|medium|random)-s(?P<seed>\d+)\.json$")


@dataclasses.dataclass(frozen=True)
class Table:
    """Print the CoFlow results table."""

    results: Path = Path("runs/results")
    """Folder of ``r-<algo>[-<tag>]-<quality>-s<seed>.json`` (``eval.py --json``) and the sweeps' JSONs."""
    datasets: Path = Path("data/datasets.json")
    """``make_dataset.py``'s summary (the datasets' own mean returns)."""
    env: str = "mpe-spread"
    """Env whose datasets the summary is read for."""


def runs(folder: Path) -> dict[tuple[str, str], dict[int, dict]]:
    """Evaluation results by (algorithm, quality), then training seed."""
    out: dict[tuple[str, str], dict[int, dict]] = {}
    for path in sorted(folder.glob("r-*.json")):
        m = NAME.search(path.name)
        if m:
            out.setdefault((m["algo"], m["quality"]), {})[int(m["seed"])] = json.loads(path.read_text())
    return out


def row(algo: str, quality: str, by_seed: dict[int, dict], data_mean: float | None) -> str:
    returns = [by_seed[s]["mean_return"] for s in sorted(by_seed)]
    sd = statistics.stdev(returns) if len(returns) > 1 else float("nan")
    each = ", ".join(f"{r:.2f}" for r in returns)
    key = "win_rate" if "win_rate" in by_seed[min(by_seed)] else "success_rate"  # soccer: wins
    success = statistics.mean(by_seed[s][key] for s in by_seed)
    cover = [by_seed[s]["coverage"] for s in by_seed if "coverage" in by_seed[s]]
    cov = f"{statistics.mean(cover):.3f}" if cover else "-"
    data = f"{data_mean:.2f}" if data_mean is not None else "-"
    return (
        f"| {algo} | {quality} | {data} | {len(returns)} | {statistics.mean(returns):.2f} ± {sd:.2f} | {each} "
        f"| {success:.3f} | {cov} |"
    )


def sweep(path: Path) -> list[str]:
    rows = json.loads(path.read_text())
    lines = [f"\n{path.name} ({rows[0]['checkpoint']}, {rows[0]['episodes']} episodes each):\n"]
    lines += ["| k | alpha | w | mean return [95% CI] | success | coverage [95% CI] |", "|---|---|---|---|---|---|"]
    for r in rows:
        lo, hi = r["return_ci95"]
        cov = "-"
        if "coverage" in r:
            cov = f"{r['coverage']:.3f} [{r['coverage_ci95'][0]:.3f}, {r['coverage_ci95'][1]:.3f}]"
        lines.append(
            f"| {r['steps']} | {r['alpha']} | {r['guidance']} | {r['mean_return']:.2f} [{lo:.2f}, {hi:.2f}] "
            f"| {r['success_rate']:.3f} | {cov} |"
        )
    return lines


def main(cfg: Table) -> None:
    means = json.loads(cfg.datasets.read_text()).get(cfg.env, {}) if cfg.datasets.exists() else {}
    head = ("algorithm", "dataset", "dataset mean return", "seeds", "mean return ± std over seeds", "per seed")
    print("| " + " | ".join((*head, "success (soccer: wins)", "coverage")) + " |")
    print("|---|---|---|---|---|---|---|---|")
    order = {"expert": 0, "medium": 1, "medium-replay": 2, "random": 3}
    for (algo, quality), by_seed in sorted(runs(cfg.results).items(), key=lambda kv: (order[kv[0][1]], kv[0][0])):
        print(row(algo, quality, by_seed, means.get(quality, {}).get("mean_return")))
    for name in ("k_sweep.json", "alpha.json"):
        if (cfg.results / name).exists():
            print("\n".join(sweep(cfg.results / name)))


if __name__ == "__main__":
    main(tyro.cli(Table))
