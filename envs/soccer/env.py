"""N-vs-N robot soccer on batched worlds.

Team 0 (``blue*``) attacks +x, team 1 (``red*``) attacks -x. Every observation is expressed in
the observing robot's frame or in its team's frame (the world turned 180 degrees for team 1),
so a policy plays either end unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import torch

from envs.base import BatchedEnv, Obs
from envs.soccer import scene
from envs.soccer.config import SEG_CLASSES, SoccerConfig
from envs.streams import WorldDraws


def _rot(x: torch.Tensor, y: torch.Tensor, c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """World vector (x, y) in a frame whose heading has cosine c and sine s: ``[..., 2]``."""
    return torch.stack((c * x + s * y, -s * x + c * y), -1)


class SoccerEnv(BatchedEnv):
    """Batched N-vs-N soccer; see ``SoccerConfig`` and the README's reference table.

    Observation groups (per agent): ``privileged`` float32 ``[16 + 12 N]`` (``fov``: ``[16 + 14 N]``),
    ``critic`` float32 ``[14 N + 7]``, ``proprio`` float32 ``[6]``; with cameras, ``camera`` uint8 ``[3, H, W]``,
    ``depth`` float32 ``[1, H, W]`` (m), ``segmentation`` uint8 ``[1, H, W]`` (``SEG_CLASSES``).
    Actions ``[3]`` in [-1, 1]: forward and lateral velocity, yaw rate (body frame).
    """

    act_dim = 3
    competitive = True

    def __init__(
        self,
        cfg: SoccerConfig,
        num_envs: int = 16,
        backend: str = "cpu",
        device: str | None = None,
        name: str = "soccer",
    ) -> None:
        self.cfg = cfg
        self.name = name
        n = cfg.team_size
        self._hl_max = cfg.pitch_length[1] / 2
        self._hw_max = cfg.pitch_width[1] / 2
        xml = scene.build_xml(
            n,
            self._hl_max,
            self._hw_max,
            cfg.goal_width / 2,
            cfg.timestep,
            cfg.max_speed,
            cfg.max_turn,
            cfg.camera_fovy,
        )
        model = mujoco.MjModel.from_xml_string(xml)
        self.agents = [scene.robot_name(t, i) for t in (0, 1) for i in range(n)]
        self.max_episode_steps = max(1, round(cfg.episode_seconds / (cfg.timestep * cfg.n_substeps)))
        super().__init__(model, num_envs, cfg.n_substeps, backend, device, ("geom_pos",), cfg.nthread)
        self._init_indices()
        dev, W, A = self.device, num_envs, 2 * n
        self.team = torch.tensor([0] * n + [1] * n, device=dev)
        self.half_length = torch.full((W,), self._hl_max, device=dev)
        self.half_width = torch.full((W,), self._hw_max, device=dev)
        self.score = torch.zeros(W, 2, dtype=torch.long, device=dev)
        self.prev_action = torch.zeros(W, A, 3, device=dev)
        self._act_scale = torch.tensor([cfg.max_speed, cfg.max_speed, cfg.max_turn], device=dev)
        # Per agent: its teammates' and opponents' agent indices, in index order.
        mates = [[j for j in range(A) if j != a and j // n == a // n] for a in range(A)]
        opps = [[j for j in range(A) if j // n != a // n] for a in range(A)]
        self._mates = torch.tensor(mates, dtype=torch.long, device=dev).view(A, n - 1)
        self._opps = torch.tensor(opps, dtype=torch.long, device=dev)
        self.consts.others = torch.cat((self._mates, self._opps), 1)  # [A, A - 1]: teammates, then opponents
        self.consts.order = torch.cat(
            (torch.arange(A, device=dev).unsqueeze(1), self.consts.others), 1
        )  # own robot first
        self.consts.observers = torch.arange(A, device=dev).unsqueeze(1)
        # Landmarks in the team frame: opponent goal, own goal, 4 corners, as multiples of (hl, hw).
        self.consts.landmark_sign = torch.tensor(
            [[1, 0], [-1, 0], [1, 1], [1, -1], [-1, 1], [-1, -1]], device=dev
        ).float()
        # Team frame: team 1 sees the world turned by 180 degrees.
        self._flip = torch.tensor([1.0] * n + [-1.0] * n, device=dev)
        self.consts.turn = (self._flip < 0).float() * math.pi  # added to a yaw in team 1's frame
        p_dim, c_dim = 16 + 12 * n + self.appended_dims("privileged", {"observability": "global"}), 14 * n + 7
        # ``fov`` memory: per observer, each object's world pose when last seen (ball: x, y; robots:
        # x, y, yaw) and whether it is in view now.
        self.ball_seen = torch.zeros(W, A, 2, device=dev)
        self._robot_seen = torch.zeros(W, A, A, 3, device=dev)
        cam = self.mj_model.camera(f"{self.agents[0]}_cam")  # every robot's head camera alike, in its body frame
        half = math.radians(float(cam.fovy[0])) / 2
        self._cam_geom = (float(cam.pos[0]), float(cam.pos[2]), math.tan(half), math.cos(half))
        box = gym.spaces.Box
        self.observation_spaces: dict[str, gym.spaces.Box] = {
            "privileged": box(-np.inf, np.inf, (p_dim,), np.float32),
            "critic": box(-np.inf, np.inf, (c_dim,), np.float32),
            "proprio": box(-np.inf, np.inf, (6,), np.float32),
        }
        if cfg.observability == "fov":  # for opponents trained with global observations (a league)
            self.observation_spaces["privileged_global"] = box(-np.inf, np.inf, (16 + 12 * n,), np.float32)
        w, h = cfg.camera_resolution
        if "rgb" in cfg.cameras:
            self.observation_spaces["camera"] = box(0, 255, (3, h, w), np.uint8)
        if "depth" in cfg.cameras:
            self.observation_spaces["depth"] = box(0.0, np.inf, (1, h, w), np.float32)
        if "segmentation" in cfg.cameras:
            self.observation_spaces["segmentation"] = box(0, len(SEG_CLASSES) - 1, (1, h, w), np.uint8)
        self._seg_table = self._segmentation_table()
        self._geom_owner = self._geom_owners()

    def appended_dims(self, group: str, source_config: dict[str, Any]) -> int:
        """How many inputs this env's ``group`` appends at its end to the same env under
        ``source_config`` (a ``SoccerConfig`` as a dict, e.g. a checkpoint's ``env_config``; the rest
        is laid out alike): what a warm start from it must add."""
        observability = source_config.get("observability", "global")
        if group != "privileged" or observability == self.cfg.observability:
            return 0
        flags = 2 * self.cfg.team_size  # the ball and the other robots' in-view flags
        return flags if self.cfg.observability == "fov" else -flags

    scripted_styles = ("attack", "defend")
    """The hand-written players ``scripted_policy`` makes (policy names ``scripted``, ``scripted-defend``)."""

    def scripted_policy(self, style: str = "attack") -> Any:
        """A hand-written soccer player for this team size: ``attack``, the attacker
        (``envs.soccer.scripted.ScriptedSoccer``), or ``defend``, the keeper that clears
        (``DefendingSoccer``)."""
        from envs.soccer.scripted import DefendingSoccer, ScriptedSoccer

        players = {"attack": ScriptedSoccer, "defend": DefendingSoccer}
        if style not in players:
            raise ValueError(f"scripted soccer style must be one of {tuple(players)}, got {style!r}")
        return players[style](self.cfg.team_size)

    def ball_in_view(self, ego: torch.Tensor) -> torch.Tensor:
        """Whether the ball at robot-frame points ``[..., 2]`` is (partly) in the robot's camera image."""
        return self._in_view(ego.to(self.device), scene.BALL_RADIUS, scene.BALL_RADIUS).to(ego.device)

    def _in_view(self, ego: torch.Tensor, height: float, radius: float) -> torch.Tensor:
        """Whether a ball of ``radius`` centred at robot-frame points ``[..., 2]`` and ``height``
        reaches into the robot's camera frustum (so some of it is in the image): ``[...]``."""
        return self._in_view_xy(ego[..., 0], ego[..., 1], height, radius)

    def _in_view_xy(self, x: torch.Tensor, y: torch.Tensor, height: float, radius: float) -> torch.Tensor:
        """``_in_view`` of robot-frame points given as their x and y."""
        cam_x, cam_z, tan_half, cos_half = self._cam_geom
        depth = x - cam_x
        reach = depth * tan_half + radius / cos_half  # the side planes moved out by the radius
        return (depth + radius > 0.02) & (y.abs() <= reach) & (abs(height - cam_z) <= reach)

    # -- model bookkeeping ------------------------------------------------------------------------
    def _init_indices(self) -> None:
        m = self.mj_model
        jid = lambda name: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, name)  # noqa: E731
        self.ball_qadr = int(m.jnt_qposadr[jid("ball")])
        self.ball_vadr = int(m.jnt_dofadr[jid("ball")])
        self.robot_qadr = torch.tensor([int(m.jnt_qposadr[jid(f"{a}_x")]) for a in self.agents])
        self.robot_vadr = torch.tensor([int(m.jnt_dofadr[jid(f"{a}_x")]) for a in self.agents])
        self.consts.robot_q_idx = (self.robot_qadr.unsqueeze(1) + torch.arange(3)).to(self.device)  # [A, 3]
        self.consts.robot_v_idx = (self.robot_vadr.unsqueeze(1) + torch.arange(3)).to(self.device)
        # Wall geoms move with the pitch: x shifts by sign_x * (hl_max - hl), y likewise.
        sx = torch.zeros(m.ngeom)
        sy = torch.zeros(m.ngeom)
        for g in range(m.ngeom):
            name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) or ""
            if name in ("wall_top", "wall_bottom"):
                sy[g] = float(np.sign(m.geom_pos[g, 1]))
            elif name.startswith(("wall_east", "wall_west", "goal_east", "goal_west")):
                sx[g] = float(np.sign(m.geom_pos[g, 0]))
        dev = self.device
        self._geom_shift = torch.stack((sx, sy), -1).to(dev)
        self._geom_pos0 = torch.as_tensor(m.geom_pos.copy(), device=dev)
        self.consts.qpos0 = torch.as_tensor(m.qpos0, device=dev)
        # Actuators are per robot: fwd, lat, turn, in agent order.
        self._ctrl_idx = torch.tensor(
            [
                mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, f"{a}_{k}")
                for a in self.agents
                for k in ("fwd", "lat", "turn")
            ],
            device=dev,
        )

    def _segmentation_table(self) -> torch.Tensor:
        """``[2, ngeom + 1]`` class of each geom (index geom + 1; 0 is background) per team."""
        m = self.mj_model
        table = torch.zeros(2, m.ngeom + 1, dtype=torch.uint8)
        c = {name: i for i, name in enumerate(SEG_CLASSES)}
        for g in range(m.ngeom):
            name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) or ""
            for team in (0, 1):
                if name in ("floor", "centre_line"):
                    k = c["floor"]
                elif name == "ball":
                    k = c["ball"]
                elif name.startswith(("blue", "red")):
                    k = c["teammate"] if name.startswith(("blue", "red")[team]) else c["opponent"]
                elif name.startswith("goal_"):
                    own_end = "west" if team == 0 else "east"
                    k = c["own_goal"] if own_end in name else c["opponent_goal"]
                else:
                    k = c["wall"]
                table[team, g + 1] = k
        return table.to(self.device)

    def reward_scales(self) -> dict[str, float]:
        return dataclasses.asdict(self.cfg.reward_scales)

    # -- state --------------------------------------------------------------------------------
    def task_state(self) -> dict[str, torch.Tensor]:
        """Float32 world-frame state: robots ``pos [W, A, 2]``, ``yaw``, ``vel``, ``wz``; ball."""
        q = self.sim.qpos
        v = self.sim.qvel
        robots_q = q[:, self.consts.robot_q_idx].float()  # [W, A, 3]: x, y, yaw
        robots_v = v[:, self.consts.robot_v_idx].float()  # vx, vy, wz
        b = self.ball_qadr
        bv = self.ball_vadr
        return {
            "pos": robots_q[..., :2],
            "yaw": robots_q[..., 2],
            "vel": robots_v[..., :2],
            "wz": robots_v[..., 2],
            "ball": q[:, b : b + 3].float(),
            "ball_vel": v[:, bv : bv + 3].float(),
            "robots_q": robots_q,
            "robots_v": robots_v,
        }

    # -- resets -------------------------------------------------------------------------------
    def _reset_worlds(self, ids: torch.Tensor) -> None:
        cfg, k, draw = self.cfg, len(ids), self.draws(ids)
        lo, hi = cfg.pitch_length
        self.half_length[ids] = (lo + (hi - lo) * draw.rand()) / 2
        lo, hi = cfg.pitch_width
        self.half_width[ids] = (lo + (hi - lo) * draw.rand()) / 2
        gp = self.sim.field("geom_pos")
        hl, hw = self.half_length[ids], self.half_width[ids]
        shift = torch.stack((self._hl_max - hl, self._hw_max - hw), -1)  # [k, 2]
        new = self._geom_pos0.unsqueeze(0).repeat(k, 1, 1)
        new[..., :2] -= self._geom_shift.unsqueeze(0) * shift.unsqueeze(1)
        gp[ids] = new.to(gp)
        self.score[ids] = 0
        self._kickoff(ids, draw)

    def _kickoff(self, ids: torch.Tensor, draw: WorldDraws | None = None) -> None:
        """Robots in their own halves in lanes, facing the other end; ball near the centre. Drawn
        from ``draw`` (a reset's), else from a draw of each world's own (a kick-off after a goal)."""
        n, k = self.cfg.team_size, len(ids)
        if draw is None:
            draw = self.draws(ids)
        hl = self.half_length[ids].unsqueeze(1)
        hw = self.half_width[ids].unsqueeze(1)
        qpos = self.consts.qpos0.repeat(k, 1)
        for team in (0, 1):
            lane = (torch.arange(n, device=self.device) + 0.2 + 0.6 * draw.rand(n)) / n  # (0, 1)
            y = (2 * lane - 1) * (hw - 0.3)
            x = -(0.5 + (hl - 0.8) * draw.rand(n))
            yaw = (draw.rand(n) - 0.5) * 1.0
            if team == 1:  # the same layout turned 180 degrees
                x, y, yaw = -x, -y, yaw + math.pi
            for i in range(n):
                a = team * n + i
                adr = int(self.robot_qadr[a])
                qpos[:, adr] = x[:, i]
                qpos[:, adr + 1] = y[:, i]
                qpos[:, adr + 2] = yaw[:, i]
        b = self.ball_qadr
        qpos[:, b : b + 2] = (draw.rand(2) - 0.5) * 0.4
        qpos[:, b + 2] = scene.BALL_RADIUS
        self.sim.reset(ids, qpos)
        self.prev_action[ids] = 0.0
        # ``fov`` memory: at kick-off every player knows where everything starts.
        A = self.num_agents
        self.ball_seen[ids] = qpos[:, b : b + 2].float().unsqueeze(1).expand(k, A, 2)
        self._robot_seen[ids] = qpos[:, self.consts.robot_q_idx].float().unsqueeze(1).expand(k, A, A, 3)

    # -- actions, rewards, observations --------------------------------------------------------
    def _apply_actions(self, actions: torch.Tensor) -> None:
        self.prev_action = actions
        ctrl = (actions * self._act_scale).reshape(self.num_envs, -1)
        self.sim.ctrl.index_copy_(1, self._ctrl_idx, ctrl.to(self.sim.ctrl))

    def _state_t(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The state with the worlds on the last axis, float32: robots' ``(x, y, yaw)`` and ``(vx, vy,
        wz)`` ``[A, 3, W]``, the ball's ``(x, y)`` and ``(vx, vy)`` ``[2, W]``."""
        A, W = self.num_agents, self.num_envs
        q, v = self.sim.qpos.T, self.sim.qvel.T  # [nq, W]
        rq = q.index_select(0, self.consts.robot_q_idx.flatten()).float().view(A, 3, W)
        rv = v.index_select(0, self.consts.robot_v_idx.flatten()).float().view(A, 3, W)
        b, bv = self.ball_qadr, self.ball_vadr
        return rq, rv, q[b : b + 2].float(), v[bv : bv + 2].float()

    def _evaluate(self) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, Any]]:
        rq, rv, ball, ball_vel = self._state_t()  # worlds last, as in _observe
        bx, by = ball[0], ball[1]
        in_mouth = by.abs() < self.cfg.goal_width / 2
        over = self.half_length + scene.BALL_RADIUS
        blue_scores = in_mouth & (bx > over)
        red_scores = in_mouth & (bx < -over)
        goal = blue_scores | red_scores
        sign = blue_scores.float() - red_scores.float()  # +1 blue scored, -1 red scored
        goal_term = sign.unsqueeze(1) * self._flip  # [W, A]
        self.score += torch.stack((blue_scores, red_scores), 1)
        # Shaping: the player's speed toward the ball, the ball's speed toward the opponent goal.
        tx, ty = bx - rq[:, 0], by - rq[:, 1]  # [A, W]
        dist = torch.stack((tx, ty), -1).norm(dim=-1).clamp_min(1e-6)
        vel_to_ball = (rv[:, 0] * tx + rv[:, 1] * ty) / dist
        gx = self.half_length * self._flip.unsqueeze(1) - bx  # to the goal the player attacks
        gy = (0.0 * self._flip).unsqueeze(1) - by
        ball_vel_to_goal = (ball_vel[0] * gx + ball_vel[1] * gy) / torch.stack((gx, gy), -1).norm(dim=-1).clamp_min(
            1e-6
        )
        terms = {"goal": goal_term, "vel_to_ball": vel_to_ball.T, "ball_vel_to_goal": ball_vel_to_goal.T}
        info: dict[str, Any] = {
            "goal": torch.where(goal, torch.where(blue_scores, 0, 1), -1),
            "score": self.score.clone(),
        }
        if self.cfg.on_goal == "terminate":
            terminated = goal.clone()
        else:
            terminated = torch.zeros_like(goal)
            info["teleported"] = goal.clone()
            if self.masked_resets:
                self.reset_where(goal, self._kickoff)
            elif goal.any():
                self._kickoff(goal.nonzero().flatten())
        return terms, terminated, info

    def _observe(self) -> Obs:
        # Computed with the worlds on the last axis (``[..., W]``): every op then runs over W contiguous
        # numbers, where ``[W, A, K, 2]`` tensors made torch loop over pairs (4x slower on the CPU).
        # Each number is the same expression of the same inputs as in the per-world layout (bit for bit).
        W, A, K = self.num_envs, self.num_agents, self.num_agents - 1
        rq, rv, ball, ball_vel = self._state_t()
        x, y, yaw = rq[:, 0], rq[:, 1], rq[:, 2]  # [A, W]
        c, si = torch.cos(yaw).unsqueeze(1), torch.sin(yaw).unsqueeze(1)  # [A, 1, W]
        oq = rq.index_select(0, self.consts.others.flatten()).view(A, K, 3, W)  # teammates, then opponents
        ov = rv.index_select(0, self.consts.others.flatten()).view(A, K, 3, W)
        f = self._flip.view(A, 1, 1)
        hl, hw = self.half_length, self.half_width  # [W]
        sign = self.consts.landmark_sign
        lx, ly = hl * sign[:, :1] * f, hw * sign[:, 1:] * f  # [A, 6, W]: team-frame landmarks in the world
        ball_x, ball_y = ball[0].expand(A, 1, W), ball[1].expand(A, 1, W)
        # Points (ball, other robots, landmarks) and vectors (ball, own, other robots' velocities).
        px = torch.cat((ball_x, oq[:, :, 0], lx), 1) - x.unsqueeze(1)  # [A, 1 + K + 6, W]
        py = torch.cat((ball_y, oq[:, :, 1], ly), 1) - y.unsqueeze(1)
        ex, ey = c * px + si * py, -si * px + c * py
        vx = torch.cat((ball_vel[0].expand(A, 1, W), rv[:, :1, :], ov[:, :, 0]), 1)  # [A, 2 + K, W]
        vy = torch.cat((ball_vel[1].expand(A, 1, W), rv[:, 1:2, :], ov[:, :, 1]), 1)
        evx, evy = c * vx + si * vy, -si * vx + c * vy
        own_vel = torch.stack((evx[:, 1], evy[:, 1], rv[:, 2]), 1)  # [A, 3, W]
        rel_yaw = oq[:, :, 2] - yaw.unsqueeze(1)
        others = (ex[:, 1 : 1 + K], ey[:, 1 : 1 + K], evx[:, 2:], evy[:, 2:], torch.cos(rel_yaw), torch.sin(rel_yaw))
        robots = torch.stack(others, 2).reshape(A, 6 * K, W)
        ball_ego = torch.stack((ex[:, 0], ey[:, 0]), 1)  # [A, 2, W]
        ball_vel_ego = torch.stack((evx[:, 0], evy[:, 0]), 1)
        marks = torch.stack((ex[:, 1 + K :], ey[:, 1 + K :]), 2).reshape(A, 12, W)
        prev = self.prev_action.permute(1, 2, 0)  # [A, 3, W]
        true = (ball_ego, ball_vel_ego, robots)
        flags: tuple[torch.Tensor, ...] = ()
        if self.cfg.observability == "fov":
            # What is in the camera's frustum now; the rest from each observer's memory of where it was.
            seen = self._in_view_xy(ex[:, 0], ey[:, 0], scene.BALL_RADIUS, scene.BALL_RADIUS)  # [A, W]
            mem_ball = torch.where(seen.unsqueeze(1), ball.unsqueeze(0), self.ball_seen.permute(1, 2, 0))
            self.ball_seen = mem_ball.permute(2, 0, 1).contiguous()
            dx, dy = mem_ball[:, 0] - x, mem_ball[:, 1] - y
            c2, s2 = c.squeeze(1), si.squeeze(1)
            ball_ego = torch.stack((c2 * dx + s2 * dy, -s2 * dx + c2 * dy), 1)
            ball_vel_ego = ball_vel_ego * seen.unsqueeze(1)
            height = scene.ROBOT_HEIGHT / 2 + 0.01
            seen_r = self._in_view_xy(ex[:, 1 : 1 + K], ey[:, 1 : 1 + K], height, scene.ROBOT_RADIUS)  # [A, K, W]
            remembered = self._robot_seen[:, self.consts.observers, self.consts.others].permute(
                1, 2, 3, 0
            )  # [A, K, 3, W]
            mem = torch.where(seen_r.unsqueeze(2), oq, remembered)
            self._robot_seen[:, self.consts.observers, self.consts.others] = mem.permute(3, 0, 1, 2)
            dx, dy = mem[:, :, 0] - x.unsqueeze(1), mem[:, :, 1] - y.unsqueeze(1)
            mvx, mvy = ov[:, :, 0] * seen_r, ov[:, :, 1] * seen_r
            rel_yaw = mem[:, :, 2] - yaw.unsqueeze(1)
            others = (
                c * dx + si * dy,
                -si * dx + c * dy,
                c * mvx + si * mvy,
                -si * mvx + c * mvy,
                torch.cos(rel_yaw),
                torch.sin(rel_yaw),
            )
            robots = torch.stack(others, 2).reshape(A, 6 * K, W)
            flags = (seen.float().unsqueeze(1), seen_r.float())  # ball, teammates, opponents in view
        privileged = torch.cat((ball_ego, ball_vel_ego, robots, marks, own_vel, prev, *flags), 1)
        # Critic: global state in the team frame, own robot first.
        oq = rq.index_select(0, self.consts.order.flatten()).view(A, A, 3, W)
        ov = rv.index_select(0, self.consts.order.flatten()).view(A, A, 3, W)
        tyaw = oq[:, :, 2] + self.consts.turn.view(A, 1, 1)
        team = (
            oq[:, :, 0] * f,
            oq[:, :, 1] * f,
            torch.cos(tyaw),
            torch.sin(tyaw),
            ov[:, :, 0] * f,
            ov[:, :, 1] * f,
            ov[:, :, 2],
        )
        f2 = self._flip.view(A, 1)
        time_left = (1 - self.episode_length.float() / self.max_episode_steps).expand(A, 1, W)
        critic = torch.cat(
            (
                torch.stack(team, 2).reshape(A, 7 * A, W),
                torch.stack((ball[0] * f2, ball[1] * f2, ball_vel[0] * f2, ball_vel[1] * f2), 1),
                hl.expand(A, 1, W),
                hw.expand(A, 1, W),
                time_left,
            ),
            1,
        )
        obs: Obs = {
            "privileged": privileged.permute(2, 0, 1).contiguous(),
            "critic": critic.permute(2, 0, 1).contiguous(),
            "proprio": torch.cat((own_vel, prev), 1).permute(2, 0, 1).contiguous(),
        }
        if self.cfg.observability == "fov":  # the same layout as a global env's privileged group
            obs["privileged_global"] = torch.cat((*true, marks, own_vel, prev), 1).permute(2, 0, 1).contiguous()
        if self._render:
            obs.update(self._observe_cameras())
        return obs

    def _observe_cameras(self) -> Obs:
        return self._cameras() if self.cfg.cameras else {}

    # -- cameras ---------------------------------------------------------------------------------
    def _cameras(self) -> Obs:
        img = self.render_cameras([f"{a}_cam" for a in self.agents], self.cfg.camera_resolution, self.cfg.cameras)
        out: Obs = {}
        if "rgb" in img:
            out["camera"] = img["rgb"]
        if "depth" in img:
            out["depth"] = img["depth"]
        if "segmentation" in img:
            seg = img["segmentation"].long() + 1  # background -1 -> 0
            team = self.team.view(1, -1, 1, 1, 1).expand_as(seg)
            out["segmentation"] = self._seg_table[team, seg]
            self_mask = self._geom_owner[seg] == torch.arange(self.num_agents, device=self.device).view(1, -1, 1, 1, 1)
            out["segmentation"] = torch.where(self_mask, SEG_CLASSES.index("self"), out["segmentation"]).to(torch.uint8)
        return out

    def _geom_owners(self) -> torch.Tensor:
        """``[ngeom + 1]`` agent index owning each geom (index geom + 1), -1 for none."""
        m = self.mj_model
        owner = torch.full((m.ngeom + 1,), -1, dtype=torch.long)
        for a, name in enumerate(self.agents):
            body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, name)
            owner[1:][torch.as_tensor(m.geom_bodyid == body)] = a
        return owner.to(self.device)
