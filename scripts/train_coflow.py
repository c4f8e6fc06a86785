"""Train a CoFlow policy (or a baseline) offline on a recorded dataset.

The run directory (``runs/coflow-<algo>-<dataset>-s<seed>`` by default) holds the resolved config,
TensorBoard logs (losses, CVA gates, steps/s), ``metrics.jsonl`` and ``checkpoint/``: the averaged
policy, which ``eval.py --checkpoint`` and ``replay.py --checkpoint`` play in the dataset's env, and
the training state. Ctrl-C or SIGTERM saves at the end of the iteration; ``--resume`` continues and
ends with the same weights as a run never stopped.

    python scripts/train_coflow.py --dataset data/mpe-spread-expert --algo coflow-c
    python scripts/train_coflow.py --dataset data/mpe-spread-expert --algo coflow-c --preset cpu   # 1 CPU thread
    python scripts/train_coflow.py --dataset data/mpe-spread-expert --algo coflow-d --train.steps 5000
    python scripts/train_coflow.py --dataset data/mpe-spread-medium --algo coflow-c --model.no-cva   # CVA off
    python scripts/train_coflow.py --dataset data/mpe-spread-medium --algo coflow-c --model.no-surrogate
    python scripts/train_coflow.py --dataset data/soccer-2v2-expert --algo coflow-c --agents 0 1   # blue team
    python scripts/train_coflow.py --dataset data/mpe-spread-expert --run-dir runs/x --resume
    torchrun --nproc_per_node 2 scripts/train_coflow.py --dataset data/mpe-spread-expert --preset cpu

Under torchrun every process trains on batches of its own (``--train.batch-size`` segments each, seeded
``--train.seed`` + its rank), the gradients averaged every step (Gloo: the model trains on the CPU);
rank 0 alone prints, logs and writes; a resume needs as many processes as the run had.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
import tyro

from agents import distributed
from agents.coflow.config import MODEL_PRESETS, Algo, CoFlowConfig, preset_config
from agents.coflow.dataset import SegmentDataset
from agents.coflow.trainer import TRAIN_PRESETS, Trainer, TrainerConfig
from agents.run_state import differing_settings, interrupted_note, resume_differences
from envs.recording import RecordingError


@dataclasses.dataclass(frozen=True)
class TrainCoFlow:
    """Train a CoFlow policy offline."""

    dataset: Path
    """A recording directory (``record.py`` or ``make_dataset.py``)."""
    algo: Algo = "coflow-c"
    """``coflow-c``, ``coflow-d``, ``bc`` or ``flow`` (the 20-step flow-matching planner)."""
    preset: str = "default"
    """Named defaults of ``--model`` and ``--train`` (flags given on the command line still win):
    ``default``, the dataclasses' own; ``cpu``, a model of about 161k parameters (width 16, two levels,
    horizon 8) trained 2,000 steps, which one CPU thread does in minutes (``MODEL_PRESETS``,
    ``TRAIN_PRESETS``)."""
    model: CoFlowConfig = CoFlowConfig()
    """The model (its ``algo`` is replaced by ``--algo``)."""
    train: TrainerConfig = TrainerConfig()
    """Steps, batch, optimiser, averaging, logging."""
    agents: tuple[int, ...] | None = None
    """Agents of the recording to learn (e.g. ``0 1``: soccer-2v2's blue team); default all."""
    run_dir: Path | None = None
    """Run directory (default ``runs/coflow-<algo>-<dataset name>-s<seed>``)."""
    resume: bool = False
    """Continue the run in ``run_dir`` from its checkpoint."""
    threads: int = 1
    """Torch CPU threads: small convolutions gain little from more, and lose much when cores are shared."""


def main(cfg: TrainCoFlow) -> Path:
    """Train as ``cfg`` says; under torchrun, as one rank of several (``agents/distributed.py``)."""
    return distributed.as_rank(None, lambda ranks: _main(cfg, ranks))


def _main(cfg: TrainCoFlow, ranks: distributed.Ranks) -> Path:
    say = print if ranks.rank == 0 else lambda *_, **__: None
    torch.set_num_threads(cfg.threads)
    model_cfg = dataclasses.replace(cfg.model, algo=cfg.algo)
    try:
        ds = SegmentDataset(
            cfg.dataset, model_cfg.horizon, model_cfg.discount, model_cfg.return_scale, agents=cfg.agents
        )
    except (RecordingError, ValueError) as err:
        raise SystemExit(f"--dataset: {err}") from None
    run_dir = cfg.run_dir or Path("runs") / f"coflow-{cfg.algo}-{cfg.dataset.name}-s{cfg.train.seed}"
    config_file = run_dir / "config.json"
    config = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
    config["world_size"] = ranks.world_size  # processes (torchrun); a resume needs as many
    if cfg.resume:
        if not config_file.exists():
            raise SystemExit(f"--resume: no run to continue in {run_dir} (no config.json)")
        # A resumed run may go on to more steps; anything else it changes is refused by name.
        saved = {"world_size": 1, **json.loads(config_file.read_text())}  # older runs: one process
        differ = resume_differences(saved, config, ("resume", "threads"))
        differ = [d for d in differ if not d.startswith("train.steps:")]
        if differ:
            raise SystemExit("--resume: " + differing_settings(run_dir, differ))
    elif (run_dir / "checkpoint").exists():
        raise SystemExit(f"{run_dir} already holds a run: pass --resume to continue it, or another --run-dir")
    trainer = Trainer(ds, model_cfg, cfg.train, run_dir)
    if ranks.rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.resume:
        try:
            trainer.load()
        except ValueError as err:
            raise SystemExit(f"--resume: {err}") from None
        say(f"resuming {run_dir} at step {trainer.step:,}")
    elif ranks.rank == 0:
        config_file.write_text(json.dumps(config, indent=1))
    say(
        f"{cfg.algo} on {cfg.dataset}: {len(ds.ep_len)} episodes, {ds.agent_steps:,} agent-steps, "
        f"dataset mean return {ds.episode_returns.mean():.2f}; {sum(p.numel() for p in trainer.model.parameters()):,} "
        "parameters"
    )
    try:
        history = trainer.learn()
    except KeyboardInterrupt as err:
        say("\n" + interrupted_note(err, run_dir / "checkpoint"))
        raise SystemExit(130) from None
    last = {k: round(v, 4) for k, v in history[-1].items() if k.startswith("loss/")} if history else {}
    say(f"done: {trainer.step:,} steps; last iteration {last}; checkpoint {run_dir / 'checkpoint'}")
    return run_dir


def cli(argv: list[str] | None = None) -> TrainCoFlow:
    """Parse ``argv``: ``--preset`` first, whose settings become the defaults the other flags override."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default="default", choices=sorted(set(MODEL_PRESETS) & set(TRAIN_PRESETS)))
    name = pre.parse_known_args(argv)[0].preset
    default = TrainCoFlow(
        dataset=tyro.MISSING,  # type: ignore[arg-type]
        preset=name,
        model=preset_config(name),
        train=TrainerConfig(**TRAIN_PRESETS[name]),  # type: ignore[arg-type]
    )
    return tyro.cli(TrainCoFlow, args=argv, default=default)


if __name__ == "__main__":
    main(cli())
