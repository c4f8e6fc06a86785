"""Learning curves of several runs on one plot, and the same curves as a table of bins.

python scripts/compare_runs.py RUN_DIR [RUN_DIR ...] [--labels A B ...] [--metric episode/success_rate]
    [--bin 2000000] [--out curves.png] [--target 0.95]

Each run is a run directory of train_teacher.py or distill_student.py (its ``metrics.jsonl``; a run
continued with --resume is one curve). The curve is the metric over the last ~100 finished episodes,
as in each run's own learning_curve.png; x is env-steps for teachers and student frames for students.
The table gives, per bin of ``--bin`` steps, the episode-weighted mean of the metric in that bin.
"""

import dataclasses
from pathlib import Path

import tyro

from agents.run_state import episode_count, episode_rate, read_metrics


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    """Learning curves of several runs."""

    runs: tyro.conf.Positional[tuple[Path, ...]]
    """Run directories."""
    labels: tuple[str, ...] = ()
    """A legend label per run (default: the directory names)."""
    metric: str = "episode/success_rate"
    """A per-episode rate in metrics.jsonl (episode/success_rate, episode/win_rate; with failed-start
    replay, episode/success_rate_fresh, over fresh starts only)."""
    bin: int = 2_000_000
    """Width of the table's bins, in env-steps or frames."""
    out: Path | None = None
    """Where the PNG goes (default: no plot)."""
    target: float | None = None
    """Draw this value of the metric as a dashed line labelled "target" (e.g. an issue's 0.95)."""


def binned(history: list[dict], key: str, x_key: str, width: int) -> dict[int, float]:
    """Episode-weighted mean of ``key`` per bin of ``width`` (keyed by the bin's start)."""
    sums: dict[int, list[float]] = {}
    for h in history:
        if key in h:
            n = episode_count(h, key)
            s = sums.setdefault(int(h[x_key] // width) * width, [0.0, 0.0])
            s[0] += h[key] * n
            s[1] += n
    return {b: v / n for b, (v, n) in sorted(sums.items()) if n > 0}


def main(cfg: CompareConfig) -> None:
    if not cfg.runs:
        raise SystemExit("give at least one run directory")
    if cfg.labels and len(cfg.labels) != len(cfg.runs):
        raise SystemExit(f"--labels: {len(cfg.labels)} labels for {len(cfg.runs)} runs")
    if cfg.bin <= 0:
        raise SystemExit(f"--bin {cfg.bin}: expected a positive number of steps")
    if cfg.target is not None and not 0.0 <= cfg.target <= 1.0:
        raise SystemExit(f"--target {cfg.target}: expected a rate between 0 and 1")
    labels = cfg.labels or tuple(r.name for r in cfg.runs)
    curves = []
    for run, label in zip(cfg.runs, labels, strict=True):
        try:
            history = read_metrics(run)
        except FileNotFoundError as err:
            raise SystemExit(str(err)) from None
        x_key = "env_steps" if any("env_steps" in h for h in history) else "frames"
        if not any(cfg.metric in h for h in history):
            raise SystemExit(f"{run}: no {cfg.metric!r} in its metrics.jsonl")
        curves.append((label, x_key, history))
        bins = binned(history, cfg.metric, x_key, cfg.bin)
        print(f"{label} ({history[-1][x_key]:,} {x_key.replace('_', '-')}):")
        print("  " + "  ".join(f"{b / 1e6:g}M: {v:.3f}" for b, v in bins.items()))
    if cfg.out is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for label, x_key, history in curves:
            ax.plot(*episode_rate(history, cfg.metric, x_key), label=label)
        if cfg.target is not None:
            ax.axhline(cfg.target, color="k", linestyle="--", linewidth=1, label=f"target {cfg.target:g}")
        ax.set_xlabel(" / ".join(sorted({x.replace("_", "-") for _, x, _ in curves})))
        ax.set_ylabel(cfg.metric.split("/")[-1] + " (last ~100 episodes)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        cfg.out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(cfg.out, dpi=100)
        plt.close(fig)
        print(f"wrote {cfg.out}")


if __name__ == "__main__":
    main(tyro.cli(CompareConfig))
