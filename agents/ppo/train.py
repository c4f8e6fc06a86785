"""Train a PPO teacher from a typed config: the run directory, the opponents, resume and init-from, the
learning curve and the model card; ``scripts/train_teacher.py`` is its command line."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Literal

import envs
from agents import distributed
from agents.evaluate import refuse_report_seed
from agents.policies import make_policy
from agents.ppo.algorithm import PPOConfig
from agents.ppo.learner_env import LearnerEnv
from agents.ppo.runner import Runner
from agents.run_state import episode_rate, interrupted_note, no_episode_note, resume_differences
from envs.config import parse_overrides, to_dict

RESUME_FREE = (
    "resume",
    "total_steps",
    "eval_episodes",
    "eval_seed",
    "save_every",
    "run_dir",
    "device",
    "init_from",
    "init_std",
)
"""What a ``--resume`` may change of a run's settings; anything else differing is refused by name. Where a run
started from (``--init-from``, ``--init-std``) is its history: a resume continues from the run's own checkpoint,
with or without those flags repeated."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Train a teacher with PPO."""

    env: str = "egopush-goal"
    """Registered env name."""
    num_envs: int = 64
    """Worlds stepped together (under torchrun: by each process)."""
    total_steps: int = 200_000
    """Learner env-steps (worlds x learning agents x steps, every process's together) to train for."""
    backend: Literal["cpu", "warp"] = "cpu"
    """Physics backend."""
    device: str | None = None
    """Device for the warp backend (the networks live there too)."""
    seed: int = 0
    """Seed of the worlds, the networks and the action noise (under torchrun: plus the global rank)."""
    resume: bool = False
    """Continue the run in ``run_dir`` from its checkpoint."""
    run_dir: Path | None = None
    """Run directory (default ``runs/<env>[-<observability>]-s<seed>``)."""
    observability: str | None = None
    """EgoPush: ``global``, ``fov`` or ``fov_gated`` teacher observations."""
    opponent: str = "scripted"
    """Competitive envs: ``scripted``, ``random`` or a checkpoint for the other team; several,
    comma-separated (``scripted,random``), make a pool each world draws its opponents from,
    more often those not beaten yet (see ``agents/ppo/selfplay.py``)."""
    selfplay: bool = False
    """Competitive envs: play a pool of frozen snapshots of the learner plus ``--opponent``
    (see ``agents/ppo/selfplay.py`` for how opponents are drawn)."""
    snapshot_every: int = 20
    """Self-play: updates between snapshots joining the pool."""
    fixed_share: float = 0.0
    """Self-play: the least share of games played against the ``--opponent`` players (0 to 1);
    the rest are drawn from the whole pool as usual (see ``agents/ppo/selfplay.py``)."""
    preset: str | None = "train"
    """The env's named training preset (``envs.presets(env)``: reward shaping, memory; see
    ``envs/<task>/presets.py``), e.g. ``train`` (dense shaping), ``knock_anchor`` or
    ``knock_anchor_memory`` (EgoPush); ``None``: the task's own rewards only."""
    env_overrides: str = "{}"
    """More env config as JSON over the preset, for one-off changes, e.g. ``'{"episode_seconds": 30}'``."""
    actor_group: str = "privileged"
    """Observation group of the actor."""
    critic_group: str = "critic"
    """Observation group of the critic (asymmetric actor-critic)."""
    init_from: Path | None = None
    """Start from this checkpoint's actor, normaliser and (if it has one) critic, e.g. a ``fov``
    teacher from a ``global`` one; same env and network shape (the inputs a new observability
    appends, soccer ``fov``'s in-view flags, start with zero weight; ``--ppo.hidden`` with as many
    layers but wider widens the source, its new units sending zero weight on: ``agents.actor.widen``)."""
    init_std: float | None = None
    """With ``--init-from``: set the actor's action standard deviation to this (a late run's is small;
    a new observability may need new exploration). Default: keep the source's."""
    replay_failures: float = 0.0
    """EgoPush: failed-start replay, a training curriculum. Each world's episode that times out keeps
    its start in a buffer (one slot per world); a new episode begins from one of them with this
    probability (0 to 1; each such start leaves the buffer, and returns if it fails again), so the
    starts the teacher does not yet solve come round again. Training only: evaluations and the
    checkpoint's env use fresh starts. TensorBoard adds ``episode/success_rate_fresh`` (fresh starts
    only) and ``episode/replayed_share``."""
    eval_episodes: int = 200
    """Episodes of the final evaluation written into the checkpoint's MODEL_CARD.md (0: none)."""
    eval_seed: int = 1000
    """Seed of that final evaluation: a development seed (the report seed, ``agents.evaluate.REPORT_SEED``,
    is refused)."""
    save_every: int = 100
    """PPO updates between checkpoints, so that a crash loses at most that many (0: save only at the
    end and on Ctrl-C or SIGTERM); ``--resume`` continues from the last one."""
    ppo: PPOConfig = PPOConfig()
    """PPO settings."""


def plot_learning_curve(history: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("episode/return", "episode/success_rate", "episode/win_rate") if any(k in h for h in history)]
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(5 * max(1, len(keys)), 3.5))
    if not keys:  # not one episode finished: say so rather than draw empty axes
        note = no_episode_note(history, "env_steps", "env-steps")
        axes.text(0.5, 0.5, note, ha="center", va="center", transform=axes.transAxes)
        print(f"learning curve: {note}")
    for ax, key in zip(axes if len(keys) > 1 else [axes], keys, strict=False):
        ax.plot(*episode_rate(history, key, "env_steps"), label="all episodes")
        fresh = key + "_fresh"
        if any(fresh in h for h in history):  # failed-start replay: fresh starts apart
            ax.plot(*episode_rate(history, fresh, "env_steps"), label="fresh starts")
            ax.legend()
        ax.set_xlabel("env-steps")
        ax.set_ylabel(key.split("/")[-1] + " (last ~100 episodes)")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _pool_table(pool: Any) -> str:
    """The opponent pool as the learner left it: games and recent score against each opponent."""
    rows = [
        f"| {name} | {games} | {score:.2f} | {weight:.2f} | {prob:.3f} |"
        for name, score, games, weight, prob in zip(
            pool.names, pool.score, pool.games, pool.weights().tolist(), pool.probabilities().tolist(), strict=True
        )
    ]
    share = f" (at least {pool.fixed_share:.0%} of draws go to the fixed players)" if pool.fixed_share else ""
    return (
        "\n\n## Opponent pool at the end of training\n\n"
        "Recent score: exponential average of win 1, draw 0.5, loss 0; a world picks its next opponent "
        f"with the probability in the last column{share} (see `agents/ppo/selfplay.py`).\n\n"
        "| opponent | games | recent score | sampling weight | draw probability |\n|---|---:|---:|---:|---:|\n"
        + "\n".join(rows)
    )


def training_minutes(history: list[dict]) -> float:
    """Minutes spent in training iterations over a run's whole history, every ``--resume`` segment
    included (each row logs its env-steps and its env-steps/s, updates included)."""
    total, prev = 0.0, 0
    for h in history:
        rate = h.get("perf/total_steps_per_s")
        if rate:
            total += (h["env_steps"] - prev) / rate
        prev = h["env_steps"]
    return total / 60


def write_model_card(
    cfg: TrainConfig,
    run_dir: Path,
    steps: int,
    wall: float,
    env_config: dict,
    history: list,
    pool: Any = None,
    world_size: int = 1,
) -> None:
    """Evaluate the final policy and write MODEL_CARD.md beside it (with the opponent pool's table, if any)."""
    from agents.evaluate import play_matches, run_episodes

    env = envs.make(
        cfg.env, num_envs=min(64, cfg.eval_episodes), **{k: v for k, v in env_config.items() if k != "reward_scales"}
    )
    policy = make_policy(str(run_dir / "checkpoint"), env)
    if env.competitive:
        rows = []
        for opp in ("scripted", "random"):
            r = play_matches(env, policy, make_policy(opp, env, seed=123), cfg.eval_episodes, seed=cfg.eval_seed)
            rows.append(
                f"| {opp} | {r['win_rate']:.3f} [{r['win_rate_ci95'][0]:.3f}, {r['win_rate_ci95'][1]:.3f}] | "
                f"{r['draw_rate']:.3f} | {r['loss_rate']:.3f} |"
            )
        table = "| opponent | win rate [95% CI] | draw | loss |\n|---|---|---|---|\n" + "\n".join(rows)
    else:
        r = run_episodes(env, policy, cfg.eval_episodes, seed=cfg.eval_seed)
        lo, hi = r["success_rate_ci95"]
        table = (
            "| episodes | success [95% CI] | reach | path length |\n|---:|---|---:|---:|\n"
            f"| {r['episodes']} | {r['success_rate']:.3f} [{lo:.3f}, {hi:.3f}] | {r['reach_rate']:.3f} | "
            f"{r['path_length']:.2f} m |"
        )
    env.close()
    command = "python scripts/train_teacher.py " + shlex.join(sys.argv[1:])
    flags = f"--num-envs {min(64, cfg.eval_episodes)} --seed {cfg.eval_seed}"  # as evaluated above
    pool_part = _pool_table(pool) if pool is not None else ""
    worlds = f"{cfg.num_envs}" if world_size == 1 else f"{cfg.num_envs} in each of {world_size} processes (torchrun)"
    ema = ""
    if cfg.ppo.actor_ema > 0:
        ema = (
            f"\n- policy: the moving average of the actor's weights (`--ppo.actor-ema {cfg.ppo.actor_ema}`, per "
            "update); the actor that collected the data is in `actor_raw/`\n  "
            "(`eval.py --checkpoint <this folder>/actor_raw`)"
        )
    card = f"""# {cfg.env} teacher{f" ({cfg.observability})" if cfg.observability else ""}

PPO teacher reading the `{cfg.actor_group}` group (critic: `{cfg.critic_group}`), trained by egoteach.

- command: `{command}`
- env-steps: {steps:,}; wall time: {wall / 60:.1f} min for this command; {training_minutes(history):.1f} min of
  training iterations in this run directory, every `--resume` included
- hardware: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), no GPU; backend `{cfg.backend}`
- seed: {cfg.seed}; worlds: {worlds}{ema}

## Evaluation (deterministic policy, the task's own rewards, seed {cfg.eval_seed})

{table}

Reproduce: `python scripts/eval.py --checkpoint <this folder> --episodes {cfg.eval_episodes} {flags}`.{pool_part}
"""
    (run_dir / "checkpoint" / "MODEL_CARD.md").write_text(card)
    print(card)


def train(cfg: TrainConfig) -> Path:
    """Train as ``cfg`` says; under torchrun, as one rank of several (``agents/distributed.py``): this
    process steps ``cfg.num_envs`` worlds of its own, seeded ``cfg.seed`` + its global rank, and rank 0
    alone logs, writes the checkpoint and the model card. Returns the run directory."""
    return distributed.as_rank(cfg.device, lambda ranks: _train(cfg, ranks))


def _train(cfg: TrainConfig, ranks: distributed.Ranks) -> Path:
    main = ranks.rank == 0
    say = print if main else lambda *_, **__: None
    seed = cfg.seed + ranks.rank  # each rank's worlds, noise and opponents: rank 0's are a single run's
    # The report seed's episodes are for reporting only: no training or selection may see them.
    refuse_report_seed(seed, "--seed (+ rank)")
    refuse_report_seed(cfg.eval_seed, "--eval-seed")
    if cfg.env not in envs.registered():
        raise ValueError(f"unknown env {cfg.env!r}; registered: {envs.registered()}")
    tag = f"-{cfg.observability}" if cfg.observability else ""
    run_dir = cfg.run_dir or Path("runs") / f"{cfg.env}{tag}-s{cfg.seed}"
    config_file = run_dir / "config.json"
    if cfg.init_std is not None and (cfg.init_from is None or cfg.init_std <= 0):
        raise ValueError(f"--init-std {cfg.init_std}: needs --init-from and a value > 0")
    if cfg.resume:
        if not config_file.exists():
            raise ValueError(f"--resume: no run to continue in {run_dir} (no config.json)")
        saved = json.loads(config_file.read_text())
        if saved["train"]["env"] != cfg.env or saved["train"]["seed"] != cfg.seed:
            raise ValueError(f"--resume: {run_dir} is a run of {saved['train']['env']} seed {saved['train']['seed']}")
        # A run saved before world_size was recorded ran in one process.
        saved_train = {"world_size": 1, **saved["train"]}
        now = {**dataclasses.asdict(cfg), "world_size": ranks.world_size}
        differ = resume_differences(saved_train, now, RESUME_FREE)
    elif (run_dir / "checkpoint").exists():
        raise ValueError(f"{run_dir} already holds a run: pass --resume to continue it, or another --run-dir")
    try:
        extra = parse_overrides(cfg.env_overrides)
    except ValueError as err:
        raise ValueError(f"--env-overrides {err}") from None
    overrides = dict(extra)
    if cfg.observability is not None:
        overrides["observability"] = cfg.observability
    if cfg.preset is not None and cfg.preset not in envs.presets(cfg.env):
        raise ValueError(f"--preset {cfg.preset!r}: {cfg.env}'s presets are {envs.presets(cfg.env)}")
    env = envs.make(
        cfg.env,
        num_envs=cfg.num_envs,
        backend=cfg.backend,
        device=distributed.local_device(cfg.device, ranks),
        preset=cfg.preset,
        **overrides,
    )
    if cfg.resume:
        differ += resume_differences(saved["env"], to_dict(env.cfg), ("nthread",))
        if differ:
            env.close()
            why = ""
            if any(d.startswith("world_size:") for d in differ):  # each rank resumes its own worlds
                why = " (world_size: the processes torchrun starts; resume with as many as the run had)"
            raise ValueError(
                f"--resume: {run_dir} was trained with other settings; differing: " + "; ".join(differ) + why
            )
    if cfg.replay_failures:
        if not hasattr(env, "replay_failed_starts"):
            raise ValueError(f"--replay-failures: {cfg.env} has no failed-start replay (EgoPush envs do)")
        try:
            env.replay_failed_starts(cfg.replay_failures)
        except ValueError as err:
            raise ValueError(f"--replay-failures: {err}") from None
    if cfg.selfplay and not env.competitive:
        raise ValueError(f"--selfplay needs a competitive env; {cfg.env} is not")
    if not 0.0 <= cfg.fixed_share <= 1.0:
        raise ValueError(f"--fixed-share is a share of games in [0, 1], got {cfg.fixed_share}")
    if cfg.fixed_share and not cfg.selfplay:
        raise ValueError("--fixed-share keeps a floor on the fixed players' games in self-play: add --selfplay")
    names = [n.strip() for n in cfg.opponent.split(",")]
    if not all(names) or len(set(names)) != len(names):
        raise ValueError(f"--opponent: one or more distinct names, comma-separated, got {cfg.opponent!r}")
    opponent: Any = None
    pool = None  # an OpponentPool when there is one: its table goes into the model card
    if env.competitive:
        try:
            fixed = {n: make_policy(n, env, seed=seed + 1 + i) for i, n in enumerate(names)}
        except ValueError as err:  # CheckpointError included: a path that is not a policy of this env
            raise ValueError(f"--opponent: {err}") from None
        opponent = fixed[names[0]]
        if cfg.selfplay or len(fixed) > 1:
            from agents.ppo.selfplay import OpponentPool

            every = cfg.snapshot_every if cfg.selfplay else 0  # no snapshots: a pool of the fixed players
            opponent = pool = OpponentPool(
                cfg.num_envs, fixed, snapshot_every=every, seed=seed + 2, fixed_share=cfg.fixed_share
            )
    learner = LearnerEnv(env, cfg.actor_group, cfg.critic_group, opponent)
    runner = Runner(
        learner, cfg.ppo, cfg.total_steps, seed, run_dir, cfg.env, to_dict(env.cfg), save_every=cfg.save_every
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.resume:
        runner.load()
        say(f"resuming {run_dir} at {runner.env_steps:,} env-steps")
        if cfg.init_from is not None:
            say(f"note: --init-from {cfg.init_from} ignored: a resumed run goes on from its own checkpoint")
    else:
        if cfg.init_from is not None:
            try:
                src, with_critic = runner.init_from(cfg.init_from, cfg.init_std)
            except ValueError as err:
                raise ValueError(f"--init-from: {err}") from None
            seen = src["env_config"].get("observability", "global")
            say(f"starting from {cfg.init_from} ({src.get('env_steps', 0):,} env-steps, observability {seen})")
            if src["obs_dim"] != runner.actor.obs_dim:
                say(
                    f"note: {env.cfg.observability} appends {runner.actor.obs_dim - src['obs_dim']} inputs to "
                    f"{seen}'s; they start with zero weight, so the policy first acts as the one it starts from"
                )
            if tuple(src["hidden"]) != runner.actor.hidden:
                say(
                    f"note: hidden layers {tuple(src['hidden'])} widened to {runner.actor.hidden}; the new units "
                    "send zero weight on, so the networks first compute what they start from"
                )
            if not with_critic:
                say(
                    f"note: {cfg.init_from} holds no training state, so the critic starts fresh; until it has "
                    "learnt the values the actor's updates are noisy (a run's own checkpoint/ keeps its critic)"
                )
        config = {"train": json.loads(json.dumps(dataclasses.asdict(cfg), default=str)), "env": to_dict(env.cfg)}
        config["train"]["world_size"] = ranks.world_size  # worlds per rank x ranks; a resume needs as many
        if main:
            config_file.write_text(json.dumps(config, indent=1))
    start = time.time()
    try:
        history = runner.learn()
    except KeyboardInterrupt as err:
        say("\n" + interrupted_note(err, run_dir / "checkpoint"))
        raise SystemExit(130) from None
    finally:
        env.close()
    wall = time.time() - start
    if not main:
        return run_dir
    plot_learning_curve(history, run_dir / "learning_curve.png", f"{cfg.env}{tag} seed {cfg.seed}")
    if cfg.eval_episodes > 0:
        write_model_card(cfg, run_dir, runner.env_steps, wall, to_dict(env.cfg), history, pool, ranks.world_size)
    last = {k: round(v, 4) for k, v in history[-1].items() if k.startswith(("episode/", "perf/"))}
    print(f"done: {runner.env_steps:,} env-steps; last iteration {last}; checkpoint {run_dir / 'checkpoint'}")
    return run_dir
