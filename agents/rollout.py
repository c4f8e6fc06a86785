"""Run policies on batched worlds and record what happens, episode by episode."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from agents.policies import Policy, episode_done
from envs.recording import RecordingWriter

INFO_KEYS = ("score", "success", "stage", "placed")  # per-step task info kept when an env has it


class TeamPolicy:
    """``policy`` for the first ``n`` agents and ``opponent`` for the rest (one joint policy)."""

    def __init__(self, policy: Policy, opponent: Policy, n: int) -> None:
        self.policy, self.opponent, self.n = policy, opponent, n

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        mine = self.policy({k: v[:, : self.n] for k, v in obs.items()})
        theirs = self.opponent({k: v[:, self.n :] for k, v in obs.items()})
        return torch.cat((mine, theirs), 1)

    def episode_done(self, done: torch.Tensor) -> None:
        episode_done(self.policy, done)
        episode_done(self.opponent, done)


class NoisyPolicy:
    """Gaussian action noise of std ``noise`` and, with probability ``epsilon`` per agent and
    step, a uniformly random action instead: the knobs that grade a dataset's quality."""

    def __init__(self, policy: Policy, noise: float = 0.0, epsilon: float = 0.0, seed: int = 0) -> None:
        if noise < 0 or not 0 <= epsilon <= 1:
            raise ValueError(f"need noise >= 0 and 0 <= epsilon <= 1, got {noise}, {epsilon}")
        self.policy, self.noise, self.epsilon = policy, noise, epsilon
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        a = self.policy(obs)
        if self.noise > 0:
            a = a + self.noise * torch.randn(a.shape, generator=self.generator).to(a)
        if self.epsilon > 0:
            swap = torch.rand(a.shape[:2], generator=self.generator).to(a.device) < self.epsilon
            rand = (torch.rand(a.shape, generator=self.generator) * 2 - 1).to(a)
            a = torch.where(swap.unsqueeze(-1), rand, a)
        return a.clamp(-1, 1)

    def episode_done(self, done: torch.Tensor) -> None:
        episode_done(self.policy, done)


class FallingEpsilon:
    """A ``NoisyPolicy`` whose random share falls linearly from 1 to ``final`` as episodes finish,
    reaching it after ``episodes`` of them: what a learner on its way to ``final`` would have seen
    (a stand-in for a training run's replay buffer). Counted in finished episodes, not steps, so
    that episodes ending early (a goal) do not leave the share high."""

    def __init__(self, policy: Policy, final: float, episodes: int, seed: int = 0) -> None:
        self.noisy = NoisyPolicy(policy, 0.0, 1.0, seed)
        self.final, self.episodes, self.finished = final, max(1, episodes), 0

    @property
    def epsilon(self) -> float:
        return 1.0 - (1.0 - self.final) * min(1.0, self.finished / self.episodes)

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        self.noisy.epsilon = self.epsilon
        return self.noisy(obs)

    def episode_done(self, done: torch.Tensor) -> None:
        self.finished += int(done.sum())
        self.noisy.episode_done(done)


def _rows(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


def record(
    env: Any,
    policy: Policy,
    writer: RecordingWriter,
    episodes: int,
    obs_groups: list[str],
    seed: int = 0,
    progress: bool = True,
) -> int:
    """Play ``episodes`` episodes in all (a fixed quota per world) and hand each to ``writer``.

    Ctrl-C (or any error) stops the run cleanly: the episodes finished so far are written and
    the manifest is marked ``interrupted``; the exception then propagates. A second Ctrl-C while
    they are written drops those not yet in a shard; the manifest still lists every shard written
    and says ``interrupted``. Returns the episodes written.
    """
    missing = [g for g in obs_groups if g not in env.observation_spaces]
    if missing:
        raise ValueError(f"unknown observation group(s) {missing}; available: {list(env.observation_spaces)}")
    W = env.num_envs
    quota = np.full(W, episodes // W)
    quota[: episodes % W] += 1
    done_count = np.zeros(W, dtype=np.int64)
    bufs: list[dict[str, list[np.ndarray]]] = [{} for _ in range(W)]
    fields = {name: env.sim.field(name) for name in getattr(env, "per_world_fields", ())}
    start_fields: list[dict[str, np.ndarray]] = [{} for _ in range(W)]

    def begin(w: int, obs_np: dict[str, np.ndarray], state_np: dict[str, np.ndarray]) -> None:
        bufs[w] = {f"obs/{g}": [obs_np[g][w]] for g in obs_groups}
        bufs[w].update({f"state/{f}": [v[w]] for f, v in state_np.items()})
        start_fields[w] = {name: _rows(t[w]).copy() for name, t in fields.items()}

    obs = env.reset(seed=seed)
    obs_np = {g: _rows(obs[g]) for g in obs_groups}
    state_np = {f: _rows(v) for f, v in env.sim.get_state().items()}
    for w in range(W):
        begin(w, obs_np, state_np)
    bar = tqdm(total=episodes, desc=f"recording {getattr(env, 'name', 'env')}", unit="ep", disable=not progress)
    finished = False
    try:
        with torch.no_grad():
            while (done_count < quota).any():
                actions = env.check_actions(policy(obs))
                obs, reward, term, trunc, info = env.step(actions)
                episode_done(policy, term | trunc)
                step = {
                    "actions": _rows(actions),
                    "rewards": _rows(reward),
                    "terminated": _rows(term),
                    "truncated": _rows(trunc),
                    "teleported": _rows(info["teleported"]),
                }
                step.update({f"info/{k}": _rows(info[k]) for k in INFO_KEYS if k in info})
                obs_np = {g: _rows(obs[g]) for g in obs_groups}
                state_np = {f: _rows(v) for f, v in env.sim.get_state().items()}
                done = step["terminated"] | step["truncated"]
                if done.any():
                    final_obs = {g: _rows(info["final_obs"][g]) for g in obs_groups}
                    final_state = {f: _rows(v) for f, v in info["final_state"].items()}
                for w in range(W):
                    buf = bufs[w]
                    for key, value in step.items():
                        buf.setdefault(key, []).append(value[w])
                    if not done[w]:
                        for g in obs_groups:
                            buf[f"obs/{g}"].append(obs_np[g][w])
                        for f, v in state_np.items():
                            buf[f"state/{f}"].append(v[w])
                        continue
                    for g in obs_groups:
                        buf[f"obs/{g}"].append(final_obs[g][w])
                    for f, v in final_state.items():
                        buf[f"state/{f}"].append(v[w])
                    if done_count[w] < quota[w]:
                        episode = {k: np.stack(v) for k, v in buf.items()}
                        episode.update({f"fields/{n}": a for n, a in start_fields[w].items()})
                        writer.add(episode, _summary(episode))
                        done_count[w] += 1
                        bar.update(1)
                    begin(w, obs_np, state_np)
        finished = True
    finally:
        # Ctrl-C or a crash: what finished is still written, and the manifest says it stopped early.
        bar.close()
        writer.close(interrupted=not finished)
    return writer.num_episodes


def _summary(ep: dict[str, np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {"return": ep["rewards"].sum(0).round(6).tolist()}
    if "info/success" in ep:
        out["success"] = bool(ep["info/success"][-1])
    if "info/score" in ep:
        out["score"] = ep["info/score"][-1].tolist()
    return out
