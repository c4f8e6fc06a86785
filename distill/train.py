"""Distil a teacher into a vision student from a typed config: the run directory, resume and init-from,
the learning curve and the model card; ``scripts/distill_student.py`` is its command line. Under
torchrun it runs as one rank of several (``agents/distributed.py``)."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Literal

from agents import distributed
from agents.checkpoint import read_meta
from agents.evaluate import EvalConfig, refuse_report_seed
from agents.evaluate import evaluate as evaluate_policy
from agents.run_state import episode_rate, interrupted_note, no_episode_note, resume_differences
from distill.dagger import DaggerConfig, Distiller
from distill.finetune import FinetuneConfig, refuse_several_processes
from distill.students import StudentConfig, student_config
from distill.teacher_env import load_teacher, make_distill_env
from envs.config import parse_overrides, to_dict

RESUME_FREE = ("resume", "total_frames", "eval_episodes", "eval_blank", "save_every", "run_dir", "device")
"""What a ``--resume`` may change of a run's settings; anything else differing is refused by name."""


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """Distil a teacher checkpoint into a vision student."""

    teacher: Path | None = None
    """Teacher checkpoint directory (required)."""
    env: str | None = None
    """Expected env name; an error if the teacher was trained on another (default: the teacher's)."""
    num_envs: int = 64
    """Worlds stepped (and rendered) together (under torchrun: by each process)."""
    total_frames: int = 200_000
    """Student frames (worlds x learning agents x steps, every process's together) to collect. 0 with
    ``--init-from``: no DAgger, e.g. to RL fine-tune a trained student (``--finetune.frames``)."""
    resolution: tuple[int, int] = (64, 64)
    """Camera width and height."""
    backend: Literal["cpu", "warp"] = "cpu"
    """Physics backend (the cameras always use MuJoCo Warp's ray tracer)."""
    device: str | None = None
    """Device for the warp backend."""
    seed: int = 0
    """Seed of the worlds, the student and the sampling (under torchrun: plus the global rank)."""
    opponent: str = "scripted"
    """Competitive envs: the other team (``scripted``, ``random`` or a checkpoint)."""
    env_overrides: str = "{}"
    """JSON object of env config fields over the teacher's, e.g. ``'{"memory_seconds": 5}'`` to
    distil from the teacher with a shorter keypoint memory (saved with the student)."""
    resume: bool = False
    """Continue the run in ``run_dir`` from its checkpoint."""
    init_from: Path | None = None
    """Start the student from this student checkpoint's weights (and its network config), e.g. to go
    on distilling a shipped student at a lower learning rate. The optimiser, buffer and beta start
    afresh: pass ``--dagger.beta 0`` to let the student drive from the first step."""
    init_encoder_from: Path | None = None
    """Start only the student's image encoder and proprio normaliser from this student checkpoint (of
    the same env and image), e.g. to train a ``transformer`` student on the CNN a ``gru`` student
    learnt; its memory and head start afresh. Not with ``--init-from``."""
    run_dir: Path | None = None
    """Run directory (default ``runs/<env>-student[-<observability>]-s<seed>``)."""
    eval_episodes: int = 200
    """Episodes of the final evaluation written into the checkpoint's MODEL_CARD.md (0: none)."""
    eval_blank: bool = True
    """Also evaluate with a blank camera (``eval.py --blank-camera``) for the model card."""
    save_every: int = 50
    """DAgger iterations between checkpoints, so that a crash loses at most that many (0: save only at
    the end and on Ctrl-C or SIGTERM); ``--resume`` continues from the last one."""
    student: StudentConfig = StudentConfig()
    """Student network."""
    dagger: DaggerConfig = DaggerConfig()
    """DAgger settings."""
    finetune: FinetuneConfig = FinetuneConfig()
    """RL fine-tuning after distillation (off unless ``--finetune.frames`` > 0; one process only)."""


def plot_learning_curve(history: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    xs = [h["frames"] for h in history]
    loss_keys = sorted({k for h in history for k in h if k.startswith("loss/")})
    for k in loss_keys:
        pts = [(x, h[k]) for x, h in zip(xs, history, strict=True) if k in h]
        axes[0].plot([p[0] for p in pts], [p[1] for p in pts], label=k)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("student frames")
    axes[0].legend()
    lr = [(x, h["dagger/lr"]) for x, h in zip(xs, history, strict=True) if "dagger/lr" in h]
    if len({v for _, v in lr}) > 1:  # a decaying --dagger.lr-schedule
        right = axes[0].twinx()
        right.plot([p[0] for p in lr], [p[1] for p in lr], "k:", label="learning rate")
        right.set_ylabel("learning rate (dotted)")
    axes[0].grid(alpha=0.3)
    for k in ("episode/success_rate", "episode/win_rate"):
        sx, sy = episode_rate(history, k, "frames")
        if not sx:
            continue
        axes[1].plot(sx, sy, label=k.split("/")[1] + " (student driving, beta mixing)")
    if not any(episode_rate(history, k, "frames")[0] for k in ("episode/success_rate", "episode/win_rate")):
        note = no_episode_note(history, "frames", "student frames")
        axes[1].text(0.5, 0.5, note, ha="center", va="center", transform=axes[1].transAxes, fontsize=8)
        print(note)
    axes[1].plot(xs, [h["dagger/beta"] for h in history], "--", label="beta")
    axes[1].set_xlabel("student frames")
    axes[1].set_ylim(-0.02, 1.02)
    axes[1].legend()
    axes[1].grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluate(checkpoint: Path, episodes: int, num_envs: int = 64, seed: int = 1000, blank: bool = False) -> dict:
    """The student (or teacher) at ``checkpoint`` over ``episodes`` episodes in its own env, at a
    development seed (the report seed is refused)."""
    refuse_report_seed(seed, "seed")
    return evaluate_policy(
        EvalConfig(checkpoint=checkpoint, episodes=episodes, num_envs=num_envs, seed=seed, blank_camera=blank)
    )


EVAL_FLAGS = "--num-envs 64 --seed 1000 [--blank-camera]"  # as ``evaluate`` runs it


def write_model_card(
    cfg: DistillConfig, run_dir: Path, frames: int, wall: float, teacher_meta: dict, world_size: int = 1
) -> None:
    res = evaluate(run_dir / "checkpoint", cfg.eval_episodes)
    blank = evaluate(run_dir / "checkpoint", cfg.eval_episodes, blank=True) if cfg.eval_blank else None
    if "success_rate" in res:
        head = "| episodes | success [95% CI] | reach | blank camera: success [95% CI] |\n|---:|---|---:|---|"
        key = "success_rate"
    else:
        head = "| matches vs scripted | win rate [95% CI] | blank camera: win rate [95% CI] |\n|---:|---|---|"
        key = "win_rate"
    lo, hi = res[f"{key}_ci95"]
    row = f"| {res['episodes']} | {res[key]:.3f} [{lo:.3f}, {hi:.3f}] | "
    if "reach_rate" in res:
        row += f"{res['reach_rate']:.3f} | "
    if blank is not None:
        blo, bhi = blank[f"{key}_ci95"]
        row += f"{blank[key]:.3f} [{blo:.3f}, {bhi:.3f}] |"
    else:
        row += "(not run) |"
    obs = teacher_meta["env_config"].get("observability")
    init = f"\n- initialised from the student `{cfg.init_from}`" if cfg.init_from else ""
    if cfg.init_encoder_from:
        init += f"\n- image encoder and proprio normaliser initialised from the student `{cfg.init_encoder_from}`"
    seg = " `segmentation` +" if cfg.student.segmentation else ""
    no_dagger = cfg.total_frames == 0 and cfg.init_from is not None
    how = "RL fine-tuned (no DAgger), with a KL penalty toward" if no_dagger else "distilled by DAgger from"
    dagger = "none (`--total-frames 0`)" if no_dagger else json.dumps(dataclasses.asdict(cfg.dagger))
    worlds = f"{cfg.num_envs}" if world_size == 1 else f"{cfg.num_envs} in each of {world_size} processes (torchrun)"
    card = f"""# {teacher_meta["env"]} student (from the {obs or "privileged"} teacher)

Egocentric vision student (`{"depth_layers" if teacher_meta["env"].startswith("egopush") else "camera"}` +{seg}
`proprio`), {how} `{cfg.teacher}` ({teacher_meta.get("env_steps", 0):,} teacher env-steps).

- command: `python scripts/distill_student.py {shlex.join(sys.argv[1:])}`{init}
- student: {json.dumps(dataclasses.asdict(cfg.student))}
- dagger: {dagger}
- RL fine-tuning: {json.dumps(dataclasses.asdict(cfg.finetune)) if cfg.finetune.frames else "none"}
- student frames: {frames:,}; wall time: {wall / 60:.1f} min
- hardware: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), no GPU; backend `{cfg.backend}`
- seed: {cfg.seed}; worlds: {worlds}; camera {cfg.resolution[0]}x{cfg.resolution[1]}

## Evaluation (deterministic student, seed 1000)

{head}
{row}

Reproduce: `python scripts/eval.py --checkpoint <this folder> --episodes {cfg.eval_episodes} {EVAL_FLAGS}`.
"""
    (run_dir / "checkpoint" / "MODEL_CARD.md").write_text(card)
    (run_dir / "eval.json").write_text(json.dumps({"eval": res, "blank_camera": blank}, indent=1))
    print(card)


def student_of(cfg: DistillConfig) -> DistillConfig:
    """``cfg`` with the student network of its ``init_from`` checkpoint (an error if ``--student.*``
    flags asked for another one). ``--student.geo-centres`` and ``--student.geo-labels`` are this
    run's: a geometric student can go on learning on other geometry (its network is the same)."""
    try:
        saved = student_config(read_meta(cfg.init_from)["student"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"--init-from: {cfg.init_from} is not a student checkpoint ({err!r})") from None
    # --student.segmentation may be added to an RGB student (its new input channels start at zero).
    seg = cfg.student.segmentation and not saved.segmentation
    if seg:
        saved = dataclasses.replace(saved, segmentation=True)
    geo = {"geo_centres": cfg.student.geo_centres, "geo_labels": cfg.student.geo_labels}
    saved = dataclasses.replace(saved, **geo)
    if cfg.student not in (StudentConfig(segmentation=seg, **geo), saved):
        raise ValueError(
            f"--init-from: {cfg.init_from} holds the student {dataclasses.asdict(saved)}; "
            "drop the --student.* flags or make them match"
        )
    return dataclasses.replace(cfg, student=saved)


def distill(cfg: DistillConfig) -> Path:
    """Distil as ``cfg`` says; under torchrun, as one rank of several (``agents/distributed.py``): this
    process steps ``cfg.num_envs`` worlds of its own, seeded ``cfg.seed`` + its global rank, and rank 0
    alone logs, writes the checkpoint and the model card. Returns the run directory."""
    return distributed.as_rank(cfg.device, lambda ranks: _distill(cfg, ranks))


def _distill(cfg: DistillConfig, ranks: distributed.Ranks) -> Path:
    main = ranks.rank == 0
    say = print if main else lambda *_, **__: None
    seed = cfg.seed + ranks.rank  # each rank's worlds and sampling: rank 0's are a single run's
    refuse_report_seed(seed, "--seed (+ rank)")  # the report seed's episodes are for reporting only
    refuse_several_processes(cfg.finetune)
    try:
        _, meta = load_teacher(cfg.teacher, cfg.env)
    except (ValueError, OSError) as err:
        raise ValueError(str(err)) from None
    obs = meta["env_config"].get("observability")
    run_dir = cfg.run_dir or Path("runs") / f"{meta['env']}-student{f'-{obs}' if obs else ''}-s{cfg.seed}"
    config_file = run_dir / "config.json"
    if cfg.resume:
        if not config_file.exists():
            raise ValueError(f"--resume: no run to continue in {run_dir} (no config.json)")
        saved = json.loads(config_file.read_text())["distill"]
        if saved["teacher"] != str(cfg.teacher) or saved["seed"] != cfg.seed:
            raise ValueError(f"--resume: {run_dir} is a run of teacher {saved['teacher']} seed {saved['seed']}")
    elif (run_dir / "checkpoint").exists():
        raise ValueError(f"{run_dir} already holds a run: pass --resume to continue it, or another --run-dir")
    if cfg.init_from is not None:
        if cfg.init_encoder_from is not None:
            raise ValueError("--init-from starts the whole student: drop --init-encoder-from")
        cfg = student_of(cfg)
    try:
        extra = parse_overrides(cfg.env_overrides)
    except ValueError as err:
        raise ValueError(f"--env-overrides {err}") from None
    extra["camera_resolution"] = tuple(cfg.resolution)
    device = distributed.local_device(cfg.device, ranks)
    env = make_distill_env(cfg.teacher, cfg.num_envs, cfg.backend, device, cfg.student.segmentation, **extra)
    if cfg.resume:
        saved_env = json.loads(config_file.read_text())["env"]
        # A run saved before world_size was recorded ran in one process.
        now = {**dataclasses.asdict(cfg), "world_size": ranks.world_size}
        differ = resume_differences({"world_size": 1, **saved}, now, RESUME_FREE)
        differ += resume_differences(saved_env, to_dict(env.cfg), ("nthread",))
        if differ:
            env.close()
            why = ""
            if any(d.startswith("world_size:") for d in differ):  # each rank resumes its own worlds
                why = " (world_size: the processes torchrun starts; resume with as many as the run had)"
            raise ValueError(
                f"--resume: {run_dir} was trained with other settings; differing: " + "; ".join(differ) + why
            )
    try:
        distiller = Distiller(
            env,
            cfg.teacher,
            cfg.student,
            cfg.dagger,
            cfg.total_frames,
            seed,
            run_dir,
            cfg.opponent,
            cfg.save_every,
            cfg.init_from,
            cfg.init_encoder_from,
        )
    except ValueError as err:  # bad settings, or an --init-from student that does not fit
        env.close()
        raise ValueError(str(err)) from None
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.resume:
        distiller.load()
        say(f"resuming {run_dir} at {distiller.frames:,} frames")
    else:
        resolved = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
        resolved["world_size"] = ranks.world_size  # worlds per rank x ranks; a resume needs as many
        if main:
            config_file.write_text(json.dumps({"distill": resolved, "env": to_dict(env.cfg)}, indent=1))
    start = time.time()
    try:
        history = distiller.learn()
        if cfg.finetune.frames > 0:
            history = distiller.finetune(cfg.finetune)
    except KeyboardInterrupt as err:
        say("\n" + interrupted_note(err, run_dir / "checkpoint"))
        raise SystemExit(130) from None
    finally:
        env.close()
    wall = time.time() - start
    if not main:
        return run_dir
    plot_learning_curve(
        history, run_dir / "learning_curve.png", f"{meta['env']} student from {obs or 'teacher'}, seed {cfg.seed}"
    )
    if cfg.eval_episodes > 0:
        write_model_card(cfg, run_dir, distiller.frames, wall, meta, ranks.world_size)
    print(f"done: {distiller.frames:,} frames; checkpoint {run_dir / 'checkpoint'}")
    return run_dir
