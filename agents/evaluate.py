"""Batched evaluation with 95% confidence intervals: matches between two teams, or task episodes."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from tqdm import tqdm

import envs
from agents.checkpoint import CheckpointError
from agents.policies import BlankCamera, Policy, checkpoint_env, episode_done, make_policy
from envs.config import parse_overrides
from envs.io import write_json


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (well behaved at 0 and 1, unlike the normal one)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(values: list[float], z: float = 1.96) -> tuple[float, tuple[float, float]]:
    """Mean and its normal-approximation 95% interval."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / max(1, n - 1))
    half = z * sd / math.sqrt(n)
    return mean, (mean - half, mean + half)


EPISODE_BAR = "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total_fmt} {unit} [{elapsed}<{remaining}]"


def _episodes(
    env: Any,
    policy: Policy,
    episodes: int,
    seed: int,
    progress: bool,
    on_episode: Callable[[int, dict[str, Any]], None],
    reward_agents: slice = slice(None),
) -> list[float]:
    """Step ``env`` under ``policy`` until each world has played its quota of ``episodes / W``
    (rounded) episodes; call ``on_episode(world, info)`` for each counted episode's last step.

    A fixed quota per world keeps short episodes from being over-counted, as they would be by
    stopping at the first ``episodes`` to finish. Returns each counted episode's return (mean
    over ``reward_agents``). The progress bar counts episodes in tenths: the finished ones, and
    of each one under way the share of its time limit (``max_episode_steps``) played, so that it
    moves from the first step instead of when a whole round of episodes ends.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    W = env.num_envs
    quota = torch.full((W,), episodes // W, dtype=torch.long)
    quota[: episodes % W] += 1
    played = torch.zeros(W, dtype=torch.long)
    returns: list[float] = []
    ep_return = torch.zeros(W)
    steps = torch.zeros(W)
    limit = float(getattr(env, "max_episode_steps", 0) or 0)
    obs = env.reset(seed=seed)
    desc = f"{getattr(env, 'name', 'env')} episodes"
    bar = tqdm(total=episodes, desc=desc, disable=not progress, unit="ep", bar_format=EPISODE_BAR)
    with torch.no_grad():
        while int(played.sum()) < episodes:
            obs, reward, term, trunc, info = env.step(policy(obs))
            ep_return += reward[:, reward_agents].mean(1).cpu()
            steps += 1
            done = (term | trunc).cpu()
            episode_done(policy, term | trunc)
            for w in done.nonzero().flatten().tolist():
                if played[w] < quota[w]:
                    on_episode(w, info)
                    returns.append(float(ep_return[w]))
                    played[w] += 1
                ep_return[w] = 0.0
                steps[w] = 0
            under_way = (steps / limit).clamp(max=0.99) * (played < quota) if limit else torch.zeros(W)
            bar.update(float(played.sum()) + float(under_way.sum()) - bar.n)
    bar.close()
    return returns


def play_matches(
    env: Any, policy: Policy, opponent: Policy, episodes: int, seed: int = 0, progress: bool = True
) -> dict[str, Any]:
    """Team 0 plays ``policy``, team 1 ``opponent``, for ``episodes`` matches in all.

    Returns:
        ``episodes``, ``win_rate`` (wins over all matches), ``draw_rate``, ``loss_rate``, each
        rate's ``*_ci95`` [low, high], ``mean_return`` (team 0 per player) and its ``return_ci95``,
        ``mean_goal_difference``.
    """
    from agents.rollout import TeamPolicy

    n = env.num_agents // 2
    diffs: list[int] = []

    def count(w: int, info: dict[str, Any]) -> None:
        diffs.append(int(info["score"][w, 0] - info["score"][w, 1]))

    returns = _episodes(env, TeamPolicy(policy, opponent, n), episodes, seed, progress, count, slice(0, n))
    wins, draws, losses = (sum(d > 0 for d in diffs), sum(d == 0 for d in diffs), sum(d < 0 for d in diffs))
    mean_ret, ret_ci = mean_interval(returns)
    return {
        "episodes": episodes,
        "win_rate": wins / episodes,
        "draw_rate": draws / episodes,
        "loss_rate": losses / episodes,
        "win_rate_ci95": wilson_interval(wins, episodes),
        "draw_rate_ci95": wilson_interval(draws, episodes),
        "loss_rate_ci95": wilson_interval(losses, episodes),
        "mean_return": mean_ret,
        "return_ci95": ret_ci,
        "mean_goal_difference": sum(diffs) / episodes,
    }


def run_episodes(env: Any, policy: Policy, episodes: int, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """``policy`` drives every agent for ``episodes`` episodes in all.

    Returns:
        ``episodes``, ``success_rate`` and ``reach_rate`` (with ``*_ci95`` Wilson intervals),
        ``path_length`` (mean metres driven per episode) and ``mean_return`` with ``return_ci95``;
        where the env's info has a ``coverage`` (mpe-spread: the share of landmarks covered), its
        mean at the episodes' last step with ``coverage_ci95``.
    """
    outcomes: list[tuple[bool, bool, float]] = []
    covered: list[float] = []

    def count(w: int, info: dict[str, Any]) -> None:
        outcomes.append((bool(info["success"][w]), bool(info["reach"][w]), float(info["path_length"][w])))
        if "coverage" in info:
            covered.append(float(info["coverage"][w]))

    returns = _episodes(env, policy, episodes, seed, progress, count)
    successes = sum(o[0] for o in outcomes)
    reaches = sum(o[1] for o in outcomes)
    mean_ret, ret_ci = mean_interval(returns)
    extra = dict(zip(("coverage", "coverage_ci95"), mean_interval(covered), strict=True)) if covered else {}
    return {
        "episodes": episodes,
        "success_rate": successes / episodes,
        "success_rate_ci95": wilson_interval(successes, episodes),
        "reach_rate": reaches / episodes,
        "reach_rate_ci95": wilson_interval(reaches, episodes),
        "path_length": sum(o[2] for o in outcomes) / episodes,
        "mean_return": mean_ret,
        "return_ci95": ret_ci,
        **extra,
    }


REPORT_SEED = 271828
"""The seed shipped figures are reported at (``eval.py --report``), and only they: no development or
model selection uses it (the trainers' own evaluations refuse it; they default to seed 1000)."""
REPORT_EPISODES = 400
"""The fewest episodes a report figure is measured over."""


def refuse_report_seed(seed: int, flag: str) -> None:
    """A ``ValueError`` naming ``flag`` if ``seed`` is the report seed: development and selection
    must never see the episodes the shipped figures are reported on."""
    if seed == REPORT_SEED:
        raise ValueError(f"{flag} {seed} is the report seed (agents.evaluate.REPORT_SEED): develop at any other")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Evaluate a policy (team 0) against an opponent (team 1)."""

    env: str = "soccer-1v1"
    """Registered env name (see ``envs.registered()``); ignored with ``--checkpoint``."""
    policy: str = "scripted"
    """Policy (team 0 in competitive envs): ``scripted``, ``random`` or a checkpoint directory."""
    checkpoint: Path | None = None
    """Evaluate this checkpoint in the env (and env config) it was trained on."""
    opponent: str = "scripted"
    """Policy of team 1 (competitive envs only): ``scripted``, ``random`` or a checkpoint directory."""
    episodes: int = 100
    """Episodes (matches) in all."""
    num_envs: int = 32
    """Worlds played at once."""
    backend: Literal["cpu", "warp"] = "cpu"
    """Physics backend."""
    device: str | None = None
    """Device for the warp backend (default: CUDA when present)."""
    seed: int = 0
    """Seed of the env and of random policies."""
    blank_camera: bool = False
    """Give the policy all-zero camera images (a failed camera)."""
    report: bool = False
    """Report a shipped figure: at the report seed (``REPORT_SEED``), over at least ``REPORT_EPISODES``
    episodes (``--seed`` ignored); the seed no development or selection uses."""
    env_overrides: str = "{}"
    """More env config as JSON, over the checkpoint's, e.g. ``'{"memory_seconds": 5}'`` or ``'{"nthread": 1}'``."""
    json: Path | None = None
    """Write the results to this JSON file as well."""


def _overrides(text: str) -> dict:
    try:
        return parse_overrides(text)
    except ValueError as err:
        raise ValueError(f"--env-overrides {err}") from None


def _policy(spec: str, env: object, seed: int, flag: str) -> object:
    """``make_policy``, with a bad ``spec`` (a folder that is not a policy, or one for another env) an
    error naming ``flag``."""
    try:
        return make_policy(spec, env, seed=seed)
    except ValueError as err:
        env.close()
        raise ValueError(f"{flag}: {err}") from None


def evaluate(cfg: EvalConfig) -> dict:
    """Play ``cfg.episodes`` episodes, print one line of results, return them (and write ``cfg.json``).

    Raises ``ValueError`` (``CheckpointError`` included) naming the flag at fault."""
    extra = _overrides(cfg.env_overrides)
    if cfg.report:
        cfg = dataclasses.replace(cfg, seed=REPORT_SEED, episodes=max(cfg.episodes, REPORT_EPISODES))
    over: dict = {}
    if cfg.checkpoint is not None:
        try:
            name, config = checkpoint_env(cfg.checkpoint)
        except CheckpointError as err:
            raise CheckpointError(f"--checkpoint: {err}") from None
        # The checkpoint's world and observations; the task's own rewards for the returns.
        over = {k: v for k, v in config.items() if k != "reward_scales"}
        cfg = dataclasses.replace(cfg, env=name, policy=str(cfg.checkpoint))
    if cfg.env not in envs.registered():
        raise ValueError(f"unknown env {cfg.env!r}; registered: {envs.registered()}")
    W = min(cfg.num_envs, cfg.episodes)
    env = envs.make(cfg.env, num_envs=W, backend=cfg.backend, device=cfg.device, **{**over, **extra})
    policy = _policy(cfg.policy, env, cfg.seed, "--checkpoint" if cfg.checkpoint is not None else "--policy")
    if cfg.blank_camera:
        policy = BlankCamera(policy)
    head = {
        "env": cfg.env,
        "policy": cfg.policy,
        "seed": cfg.seed,
        "blank_camera": cfg.blank_camera,
        "env_overrides": extra,
        "report": cfg.report,
    }
    blank = (" (blank camera)" if cfg.blank_camera else "") + (" [report seed]" if cfg.report else "")
    if env.competitive:
        opponent = _policy(cfg.opponent, env, cfg.seed + 1, "--opponent")
        result = {**head, "opponent": cfg.opponent, **play_matches(env, policy, opponent, cfg.episodes, seed=cfg.seed)}
        lo, hi = result["win_rate_ci95"]
        print(
            f"{cfg.env}: {cfg.policy}{blank} vs {cfg.opponent} over {cfg.episodes} episodes: "
            f"win {result['win_rate']:.3f} [{lo:.3f}, {hi:.3f}]  draw {result['draw_rate']:.3f}  "
            f"loss {result['loss_rate']:.3f}  mean return {result['mean_return']:.3f}"
        )
    else:
        result = {**head, **run_episodes(env, policy, cfg.episodes, seed=cfg.seed)}
        lo, hi = result["success_rate_ci95"]
        print(
            f"{cfg.env}: {cfg.policy}{blank} over {cfg.episodes} episodes: success {result['success_rate']:.3f} "
            f"[{lo:.3f}, {hi:.3f}]  reach {result['reach_rate']:.3f}  path length {result['path_length']:.2f} m  "
            f"mean return {result['mean_return']:.3f}"
        )
    env.close()
    if cfg.json is not None:
        write_json(cfg.json, result)  # atomic: no half-written results
    return result
