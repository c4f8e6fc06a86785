"""The dream as an env: a trained causal student rolled out from its KV cache, behind the batched
env contract (``envs/base.py``), so that policies act inside the generated match.

``DreamEnv(checkpoint, num_envs, num_agents)`` starts every world from real first frames (given to
``reset``, or drawn from recordings), then each ``step(actions [W, A, act_dim])`` generates one
block of the student: ``block`` frames of every player's camera with the actions held over the
block (a frame-skip: the frames of a block are denoised together, so they cannot wait for each
other's actions). The observation is ``camera`` uint8 ``[W, A, 3, H, W]``, the block's last frame;
every frame of the block is in ``info["frames"]`` ``[W, block, A, 3, H, W]``.

With ``proprio_scale`` (the recordings' robot speeds; taken from a soccer recording's config when
recordings are given), the dream also gives soccer's ``proprio`` ``[W, A, 6]``: the robot's own
velocity (forward, lateral, yaw rate) and its previous action, as a camera-and-proprio vision student
reads it. The velocity is **not generated**: it is the previous action times the speeds its velocity
servos track (``max_speed``, ``max_speed``, ``max_turn``), a hand-written estimate, exact only at
steady state. What a dream has not: rewards (zeros), terminations (none). Episodes end by
truncation after ``max_episode_steps`` steps, in every world at once (the cache's sink frames
are shared by its rows), and restart from new first frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from distill.world_model.data import ClipDataset
from distill.world_model.positions import assign_agents
from distill.world_model.student import CachedRollout
from distill.world_model.train import load_stage
from envs.base import BatchedEnv

Obs = dict[str, torch.Tensor]


class DreamEnv:
    """W generated worlds of A players (see the module docstring).

    Args:
        checkpoint: a student checkpoint (``scripts/train_world_model.py --stage student``).
        num_envs: W, worlds dreamed together.
        num_agents: A, players per world (at most the agent encoding's pool).
        recordings: where ``reset`` draws first frames when none are given.
        envs: env names those recordings must be of (None: any with ``num_agents`` players).
        max_episode_steps: steps (blocks) before every world is truncated and restarts.
        device: torch device of the networks.
        seed: seed of the start clips and the sampling noise.
        proprio_scale: ``(max_speed, max_speed, max_turn)`` of the recorded robots, to give ``proprio``
            (see the module docstring); default from the first recording's config when it has them
            (soccer), else no ``proprio``.
        name: the env the dream stands in for, which a policy checkpoint is checked against
            (``make_policy(checkpoint, dream)`` loads a vision student of that env); default the
            first recording's env, else ``"dream"``.
    """

    competitive = False
    render_mode = "rgb_array"

    def __init__(
        self,
        checkpoint: str | Path,
        num_envs: int,
        num_agents: int,
        recordings: Sequence[str | Path] = (),
        envs: Sequence[str] | None = None,
        max_episode_steps: int = 100,
        device: str = "cpu",
        seed: int = 0,
        proprio_scale: tuple[float, float, float] | None = None,
        name: str | None = None,
    ) -> None:
        tok, student, meta = load_stage(Path(checkpoint), "student", device)
        assert student is not None
        self.tok, self.student = tok.eval(), student.eval()
        cfg = self.student.cfg
        assign_agents(1, num_agents, cfg.positions.pool)  # refuses more players than the pool, by its limit
        self.num_envs, self.device = num_envs, torch.device(device)
        self.agents = [f"player_{i}" for i in range(num_agents)]
        self.act_dim = cfg.act_dim
        self.block = self.student.scfg.block
        self.context = self.student.context_frames
        self.max_episode_steps = max_episode_steps
        size = tok.cfg.image_size
        self.observation_spaces = {"camera": gym.spaces.Box(0, 255, (3, size, size), dtype=np.uint8)}
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.act_dim,), dtype=np.float32)
        self.data = ClipDataset(recordings, self.context, envs=envs) if recordings else None
        if name is None:
            name = self.data.recordings[0].env if self.data is not None else "dream"
        self.name = name
        if proprio_scale is None and self.data is not None:
            config = self.data.recordings[0].config
            if "max_speed" in config and "max_turn" in config:
                proprio_scale = (config["max_speed"], config["max_speed"], config["max_turn"])
        self.proprio_scale = None
        if proprio_scale is not None:
            if len(proprio_scale) != self.act_dim:
                raise ValueError(f"proprio_scale needs one speed per action dim ({self.act_dim}), got {proprio_scale}")
            self.proprio_scale = torch.tensor(proprio_scale, dtype=torch.float32, device=self.device)
            self.observation_spaces["proprio"] = gym.spaces.Box(-np.inf, np.inf, (2 * self.act_dim,), np.float32)
        self._prev_action = torch.zeros(num_envs, num_agents, self.act_dim, device=self.device)
        self.generator = torch.Generator().manual_seed(seed)
        self.episode_length = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        max_frames = self.context + self.block * max_episode_steps
        self.rollout = CachedRollout(self.student, num_envs, num_agents, max_frames, self.device)
        self._start: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    def check_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Validated, clipped actions ``[W, A, act_dim]``: the contract's own check (it reads only
        ``num_envs``, ``num_agents``, ``act_dim`` and ``device``)."""
        return BatchedEnv.check_actions(self, actions)  # type: ignore[arg-type]

    def _draw_start(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.data is None:
            if self._start is None:
                raise ValueError("reset needs first frames: pass frames=..., or build the DreamEnv with recordings")
            return self._start
        idx = torch.randint(len(self.data), (self.num_envs,), generator=self.generator).tolist()
        return self.data.batch(idx)

    @torch.no_grad()
    def reset(
        self, seed: int | None = None, frames: torch.Tensor | None = None, actions: torch.Tensor | None = None
    ) -> Obs:
        """Start every world from real first ``frames`` uint8 ``[W, Tc, A, 3, H, W]`` (``Tc``: the
        student's context, ``self.context``) and the ``actions`` that led into them (default
        zeros), or from clips of the recordings; returns the last real frame as ``camera``."""
        if seed is not None:
            self.generator.manual_seed(int(seed))
        if frames is None:
            frames, actions = self._draw_start()
        W, A = self.num_envs, self.num_agents
        expected = (W, self.context, A, *self.observation_spaces["camera"].shape)
        if tuple(frames.shape) != expected:
            raise ValueError(f"first frames must be [W, Tc, A, 3, H, W] = {list(expected)}, got {list(frames.shape)}")
        if actions is None:
            actions = torch.zeros(W, self.context, A, self.act_dim)
        frames, actions = frames.to(self.device), actions.to(self.device, torch.float32)
        self._start = (frames, actions)
        ids = torch.arange(A, device=self.device).expand(W, A)
        self.rollout.start(self.tok.encode(frames), actions, ids)
        self.episode_length.zero_()
        self._prev_action = actions[:, -1].clone()
        return self._obs(frames[:, -1])

    def _obs(self, camera: torch.Tensor) -> Obs:
        """``camera``, and with a ``proprio_scale`` the estimated ``proprio`` (module docstring)."""
        obs = {"camera": camera}
        if self.proprio_scale is not None:
            obs["proprio"] = torch.cat((self._prev_action * self.proprio_scale, self._prev_action), -1)
        return obs

    @torch.no_grad()
    def step(self, actions: torch.Tensor) -> tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Dream one block with ``actions`` ``[W, A, act_dim]`` held over it. Returns obs
        (``camera`` ``[W, A, 3, H, W]``), reward ``[W, A]`` (zeros), terminated ``[W]`` (never),
        truncated ``[W]``, and info with ``frames`` (the whole block), ``teleported`` and ``diverged``
        (never), and at a truncation ``final_obs`` and ``episode_length``."""
        if self._start is None:
            raise RuntimeError("call reset() before step()")
        actions = self.check_actions(actions)
        W, A = self.num_envs, self.num_agents
        held = actions[:, None].expand(W, self.block, A, self.act_dim)
        latents = self.rollout.next_block(held, self.generator)
        frames = (self.tok.decode(latents) * 255).round().to(torch.uint8)
        self.episode_length += 1
        self._prev_action = actions.clone()
        obs = self._obs(frames[:, -1])
        never = torch.zeros(W, dtype=torch.bool, device=self.device)
        truncated = self.episode_length >= self.max_episode_steps
        info: dict[str, Any] = {"frames": frames, "teleported": never.clone(), "diverged": never.clone()}
        if bool(truncated.any()):  # every world at once: they share the episode clock
            info["final_obs"], info["episode_length"] = obs, self.episode_length.clone()
            obs = self.reset()
        reward = torch.zeros(W, A, device=self.device)
        return obs, reward, never, truncated, info

    def close(self) -> None:
        """Nothing to release (the contract's ``close``)."""
