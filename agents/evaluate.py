"""Batched matches between two policies, with win/draw/loss rates and 95% confidence intervals."""

from __future__ import annotations

import math
from typing import Any

import torch
from tqdm import tqdm

from agents.policies import Policy


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (well behaved at 0 and 1, unlike the normal one)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def play_matches(
    env: Any, policy: Policy, opponent: Policy, episodes: int, seed: int = 0, progress: bool = True
) -> dict[str, Any]:
    """Team 0 plays ``policy``, team 1 ``opponent``, for ``episodes`` episodes in all.

    Each world plays a fixed quota of episodes (``episodes / W``, rounded), so that short
    episodes are not over-counted by stopping at the first ``episodes`` to finish.

    Returns:
        ``episodes``, ``win_rate`` (wins over all matches), ``draw_rate``, ``loss_rate``, each
        rate's ``*_ci95`` [low, high], ``mean_return`` (team 0 per player) and its ``return_ci95``,
        ``mean_goal_difference``.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    W = env.num_envs
    n = env.num_agents // 2
    quota = torch.full((W,), episodes // W, dtype=torch.long)
    quota[: episodes % W] += 1
    played = torch.zeros(W, dtype=torch.long)
    wins = draws = losses = 0
    returns: list[float] = []
    goal_diff: list[int] = []
    ep_return = torch.zeros(W)
    obs = env.reset(seed=seed)
    bar = tqdm(total=episodes, desc=f"{getattr(env, 'name', 'env')} matches", disable=not progress, unit="ep")
    with torch.no_grad():
        while int(played.sum()) < episodes:
            mine = policy({k: v[:, :n] for k, v in obs.items()})
            theirs = opponent({k: v[:, n:] for k, v in obs.items()})
            obs, reward, term, trunc, info = env.step(torch.cat((mine, theirs), 1))
            ep_return += reward[:, :n].mean(1).cpu()
            done = (term | trunc).cpu()
            if not done.any():
                continue
            score = info["score"].cpu()
            for w in done.nonzero().flatten().tolist():
                if played[w] < quota[w]:
                    d = int(score[w, 0] - score[w, 1])
                    wins += d > 0
                    draws += d == 0
                    losses += d < 0
                    goal_diff.append(d)
                    returns.append(float(ep_return[w]))
                    played[w] += 1
                    bar.update(1)
                ep_return[w] = 0.0
    bar.close()
    mean_ret = sum(returns) / episodes
    sd = math.sqrt(sum((r - mean_ret) ** 2 for r in returns) / max(1, episodes - 1))
    half = 1.96 * sd / math.sqrt(episodes)
    return {
        "episodes": episodes,
        "win_rate": wins / episodes,
        "draw_rate": draws / episodes,
        "loss_rate": losses / episodes,
        "win_rate_ci95": wilson_interval(wins, episodes),
        "draw_rate_ci95": wilson_interval(draws, episodes),
        "loss_rate_ci95": wilson_interval(losses, episodes),
        "mean_return": mean_ret,
        "return_ci95": (mean_ret - half, mean_ret + half),
        "mean_goal_difference": sum(goal_diff) / episodes,
    }


def run_episodes(env: Any, policy: Policy, episodes: int, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """``policy`` drives every agent for ``episodes`` episodes (a quota per world, as above).

    Returns:
        ``episodes``, ``success_rate`` and ``reach_rate`` (with ``*_ci95`` Wilson intervals),
        ``path_length`` (mean metres driven per episode) and ``mean_return`` with ``return_ci95``.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    W = env.num_envs
    quota = torch.full((W,), episodes // W, dtype=torch.long)
    quota[: episodes % W] += 1
    played = torch.zeros(W, dtype=torch.long)
    successes = reaches = 0
    paths: list[float] = []
    returns: list[float] = []
    ep_return = torch.zeros(W)
    obs = env.reset(seed=seed)
    bar = tqdm(total=episodes, desc=f"{getattr(env, 'name', 'env')} episodes", disable=not progress, unit="ep")
    with torch.no_grad():
        while int(played.sum()) < episodes:
            obs, reward, term, trunc, info = env.step(policy(obs))
            ep_return += reward.mean(1).cpu()
            done = (term | trunc).cpu()
            if not done.any():
                continue
            for w in done.nonzero().flatten().tolist():
                if played[w] < quota[w]:
                    successes += bool(info["success"][w])
                    reaches += bool(info["reach"][w])
                    paths.append(float(info["path_length"][w]))
                    returns.append(float(ep_return[w]))
                    played[w] += 1
                    bar.update(1)
                ep_return[w] = 0.0
    bar.close()
    mean_ret = sum(returns) / episodes
    sd = math.sqrt(sum((r - mean_ret) ** 2 for r in returns) / max(1, episodes - 1))
    half = 1.96 * sd / math.sqrt(episodes)
    return {
        "episodes": episodes,
        "success_rate": successes / episodes,
        "success_rate_ci95": wilson_interval(successes, episodes),
        "reach_rate": reaches / episodes,
        "reach_rate_ci95": wilson_interval(reaches, episodes),
        "path_length": sum(paths) / episodes,
        "mean_return": mean_ret,
        "return_ci95": (mean_ret - half, mean_ret + half),
    }
