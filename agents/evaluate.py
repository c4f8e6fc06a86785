"""Batched evaluation with 95% confidence intervals: matches between two teams, or task episodes."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from tqdm import tqdm

from agents.policies import Policy, episode_done


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
    over ``reward_agents``).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    W = env.num_envs
    quota = torch.full((W,), episodes // W, dtype=torch.long)
    quota[: episodes % W] += 1
    played = torch.zeros(W, dtype=torch.long)
    returns: list[float] = []
    ep_return = torch.zeros(W)
    obs = env.reset(seed=seed)
    bar = tqdm(total=episodes, desc=f"{getattr(env, 'name', 'env')} episodes", disable=not progress, unit="ep")
    with torch.no_grad():
        while int(played.sum()) < episodes:
            obs, reward, term, trunc, info = env.step(policy(obs))
            ep_return += reward[:, reward_agents].mean(1).cpu()
            done = (term | trunc).cpu()
            episode_done(policy, term | trunc)
            for w in done.nonzero().flatten().tolist():
                if played[w] < quota[w]:
                    on_episode(w, info)
                    returns.append(float(ep_return[w]))
                    played[w] += 1
                    bar.update(1)
                ep_return[w] = 0.0
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
        ``path_length`` (mean metres driven per episode) and ``mean_return`` with ``return_ci95``.
    """
    outcomes: list[tuple[bool, bool, float]] = []

    def count(w: int, info: dict[str, Any]) -> None:
        outcomes.append((bool(info["success"][w]), bool(info["reach"][w]), float(info["path_length"][w])))

    returns = _episodes(env, policy, episodes, seed, progress, count)
    successes = sum(o[0] for o in outcomes)
    reaches = sum(o[1] for o in outcomes)
    mean_ret, ret_ci = mean_interval(returns)
    return {
        "episodes": episodes,
        "success_rate": successes / episodes,
        "success_rate_ci95": wilson_interval(successes, episodes),
        "reach_rate": reaches / episodes,
        "reach_rate_ci95": wilson_interval(reaches, episodes),
        "path_length": sum(o[2] for o in outcomes) / episodes,
        "mean_return": mean_ret,
        "return_ci95": ret_ci,
    }
