"""A plain single-world Gymnasium env of a task's MJCF, written the way a user would write it with
the ``mujoco`` bindings alone: the baseline that ``scripts/bench_env.py`` and
``scripts/bench_train.py`` measure the batched envs against."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import torch

from envs.registry import make


class PlainMujocoEnv(gym.Env):
    """One world of env ``name``'s MJCF as a user would write it with the ``mujoco`` bindings alone.

    Step: the action in ``[-1, 1]`` per control-limited actuator mapped onto its ``ctrlrange``, then
    ``mj_step`` ``n_substeps`` times. Observation: ``qpos`` and ``qvel`` from ``MjData`` (plus the
    goal region's centre in ``egopush-goal``), float32. Episodes end after the task's
    ``max_episode_steps``. Start states come from the task's own sampler (a one-world batched env
    kept aside for that alone), so that both sides start from the same distribution. With
    ``reward=True`` (``egopush-goal`` only) the task's reward is restated from ``MjData`` in numpy:
    the training shaping (approach 1.0, progress 3.0, time 0.001), the reach and place stage rewards
    (without their decay) and the success term; success ends the episode.
    """

    def __init__(self, name: str, reward: bool = False, **overrides: Any) -> None:
        self._starts = make(name, num_envs=1, nthread=1, **overrides)
        task = self._starts
        self.model = task.mj_model
        self.data = mujoco.MjData(self.model)
        self.n_substeps, self.max_steps = task.n_substeps, task.max_episode_steps
        self.goal = name == "egopush-goal"
        if reward and not self.goal:
            raise ValueError("PlainMujocoEnv restates the reward of egopush-goal only")
        self.reward = reward
        m = self.model
        self.act_idx = np.flatnonzero(m.actuator_ctrllimited)
        lo, hi = m.actuator_ctrlrange[self.act_idx].T
        self.ctrl_mid, self.ctrl_half = (hi + lo) / 2, (hi - lo) / 2
        n_obs = m.nq + m.nv + (2 if self.goal else 0)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (n_obs,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (len(self.act_idx),), np.float32)
        if self.goal:
            self.rq, self.bq = int(task.robot_qadr), int(task.box_qadr[0])
            cfg = task.cfg
            self.tol, self.reach_d = cfg.position_tolerance, cfg.reach_distance
            self.reach_r, self.place_r = cfg.reach_reward, cfg.place_reward
            # The pusher plate's centre lies this far ahead of the robot's (a constant of the MJCF).
            self.push_d = float(task.pusher({"pos": torch.zeros(1, 2), "yaw": torch.zeros(1)})[0, 0])
        self.region = np.zeros(2)
        self.t = 0

    def _obs(self) -> np.ndarray:
        parts = [self.data.qpos, self.data.qvel] + ([self.region] if self.goal else [])
        return np.concatenate(parts).astype(np.float32)

    def _dists(self) -> tuple[float, float]:
        q = self.data.qpos
        x, y, yaw = q[self.rq : self.rq + 3]
        box = q[self.bq : self.bq + 2]
        pusher = np.array([x + self.push_d * np.cos(yaw), y + self.push_d * np.sin(yaw)])
        return float(np.linalg.norm(pusher - box)), float(np.linalg.norm(box - self.region))

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._starts.reset(seed=seed)  # the task's start sampler
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = self._starts.sim.qpos[0].double().numpy()
        if self.goal:
            self.region = self._starts.region[0].double().numpy().copy()
            self.reached = False
            self.prev = self._dists()
        mujoco.mj_forward(self.model, self.data)
        self.t = 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        a = np.clip(action, -1.0, 1.0)
        self.data.ctrl[self.act_idx] = self.ctrl_mid + self.ctrl_half * a
        for _ in range(self.n_substeps):
            mujoco.mj_step(self.model, self.data)
        self.t += 1
        reward, success = 0.0, False
        if self.reward:
            reach, place = self._dists()
            success = place < self.tol
            if not self.reached:
                reward += self.prev[0] - reach
                if reach < self.reach_d:
                    self.reached = True
                    reward += self.reach_r
            else:
                reward += 3.0 * (self.prev[1] - place)
            reward += -0.001 + (self.place_r + 1.0 if success else 0.0)
            self.prev = (reach, place)
        return self._obs(), reward, success, self.t >= self.max_steps, {"success": float(success)}

    def close(self) -> None:
        self._starts.close()
