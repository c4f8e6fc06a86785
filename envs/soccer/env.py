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
        # Team frame: team 1 sees the world turned by 180 degrees.
        self._flip = torch.tensor([1.0] * n + [-1.0] * n, device=dev)
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
        cam_x, cam_z, tan_half, cos_half = self._cam_geom
        depth = ego[..., 0] - cam_x
        reach = depth * tan_half + radius / cos_half  # the side planes moved out by the radius
        return (depth + radius > 0.02) & (ego[..., 1].abs() <= reach) & (abs(height - cam_z) <= reach)

    # -- model bookkeeping ------------------------------------------------------------------------
    def _init_indices(self) -> None:
        m = self.mj_model
        jid = lambda name: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, name)  # noqa: E731
        self.ball_qadr = int(m.jnt_qposadr[jid("ball")])
        self.ball_vadr = int(m.jnt_dofadr[jid("ball")])
        self.robot_qadr = torch.tensor([int(m.jnt_qposadr[jid(f"{a}_x")]) for a in self.agents])
        self.robot_vadr = torch.tensor([int(m.jnt_dofadr[jid(f"{a}_x")]) for a in self.agents])
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
        rq = self.robot_qadr.to(q.device)
        rv = self.robot_vadr.to(q.device)
        robots_q = q[:, rq.unsqueeze(1) + torch.arange(3, device=q.device)].float()
        robots_v = v[:, rv.unsqueeze(1) + torch.arange(3, device=q.device)].float()
        b = self.ball_qadr
        bv = self.ball_vadr
        return {
            "pos": robots_q[..., :2],
            "yaw": robots_q[..., 2],
            "vel": robots_v[..., :2],
            "wz": robots_v[..., 2],
            "ball": q[:, b : b + 3].float(),
            "ball_vel": v[:, bv : bv + 3].float(),
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
        qpos = torch.as_tensor(self.mj_model.qpos0, device=self.device).repeat(k, 1)
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
        rq = self.robot_qadr.to(self.device).unsqueeze(1) + torch.arange(3, device=self.device)
        self._robot_seen[ids] = qpos[:, rq].float().unsqueeze(1).expand(k, A, A, 3)

    # -- actions, rewards, observations --------------------------------------------------------
    def _apply_actions(self, actions: torch.Tensor) -> None:
        self.prev_action = actions
        ctrl = (actions * self._act_scale).reshape(self.num_envs, -1)
        self.sim.ctrl[:, self._ctrl_idx.to(self.sim.ctrl.device)] = ctrl.to(self.sim.ctrl)

    def _evaluate(self) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, Any]]:
        s = self.task_state()
        bx, by = s["ball"][:, 0], s["ball"][:, 1]
        in_mouth = by.abs() < self.cfg.goal_width / 2
        over = self.half_length + scene.BALL_RADIUS
        blue_scores = in_mouth & (bx > over)
        red_scores = in_mouth & (bx < -over)
        goal = blue_scores | red_scores
        sign = blue_scores.float() - red_scores.float()  # +1 blue scored, -1 red scored
        goal_term = sign.unsqueeze(1) * self._flip  # [W, A]
        self.score[:, 0] += blue_scores.long()
        self.score[:, 1] += red_scores.long()
        # Shaping: the player's speed toward the ball, the ball's speed toward the opponent goal.
        to_ball = s["ball"][:, None, :2] - s["pos"]
        dist = to_ball.norm(dim=-1).clamp_min(1e-6)
        vel_to_ball = (s["vel"] * to_ball).sum(-1) / dist
        target = torch.stack((self.half_length, torch.zeros_like(self.half_length)), -1)  # blue's target
        tgt = target[:, None, :] * self._flip[None, :, None]  # [W, A, 2]
        to_goal = tgt - s["ball"][:, None, :2]
        ball_vel_to_goal = (s["ball_vel"][:, None, :2] * to_goal).sum(-1) / to_goal.norm(dim=-1).clamp_min(1e-6)
        terms = {"goal": goal_term, "vel_to_ball": vel_to_ball, "ball_vel_to_goal": ball_vel_to_goal}
        info: dict[str, Any] = {
            "goal": torch.where(goal, torch.where(blue_scores, 0, 1), -1),
            "score": self.score.clone(),
        }
        if self.cfg.on_goal == "terminate":
            terminated = goal.clone()
        else:
            terminated = torch.zeros_like(goal)
            info["teleported"] = goal.clone()
            if goal.any():
                self._kickoff(goal.nonzero().flatten())
        return terms, terminated, info

    def _observe(self) -> Obs:
        s = self.task_state()
        n = self.cfg.team_size
        W, A = self.num_envs, 2 * n
        pos, yaw, vel, wz = s["pos"], s["yaw"], s["vel"], s["wz"]
        c, si = torch.cos(yaw), torch.sin(yaw)  # [W, A]
        cc, ss = c.unsqueeze(-1), si.unsqueeze(-1)

        def ego_points(p: torch.Tensor) -> torch.Tensor:  # p [W, A, K, 2] world -> ego [W, A, K, 2]
            d = p - pos.unsqueeze(2)
            return _rot(d[..., 0], d[..., 1], cc, ss)

        def ego_vecs(v: torch.Tensor) -> torch.Tensor:
            return _rot(v[..., 0], v[..., 1], cc, ss)

        ball = s["ball"][:, None, None, :2].expand(W, A, 1, 2)
        ball_vel = s["ball_vel"][:, None, None, :2].expand(W, A, 1, 2)
        own_vel = torch.cat((ego_vecs(vel.unsqueeze(2)).squeeze(2), wz.unsqueeze(-1)), -1)  # [W, A, 3]

        fov = self.cfg.observability == "fov"
        observers = torch.arange(A, device=self.device).unsqueeze(1)  # [A, 1]
        flags: list[torch.Tensor] = []

        def features(p: torch.Tensor, v: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # [W, A, K, ...]
            rel_yaw = y - yaw.unsqueeze(-1)
            feats = (ego_points(p), ego_vecs(v), torch.cos(rel_yaw).unsqueeze(-1), torch.sin(rel_yaw).unsqueeze(-1))
            return torch.cat(feats, -1).reshape(W, A, p.shape[2] * 6)

        unmasked: list[torch.Tensor] = []  # fov: the other robots as global observability shows them

        def others(idx: torch.Tensor) -> torch.Tensor:  # idx [A, K] -> [W, A, K * 6]
            k = idx.shape[1]
            if k == 0:
                unmasked.append(pos.new_zeros(W, A, 0))
                return pos.new_zeros(W, A, 0)
            p, v, y = pos[:, idx], vel[:, idx], yaw[:, idx]  # [W, A, K, ...]
            if fov:
                unmasked.append(features(p, v, y))
                seen = self._in_view(ego_points(p), scene.ROBOT_HEIGHT / 2 + 0.01, scene.ROBOT_RADIUS)  # [W, A, K]
                mem = torch.where(
                    seen.unsqueeze(-1), torch.cat((p, y.unsqueeze(-1)), -1), self._robot_seen[:, observers, idx]
                )
                self._robot_seen[:, observers, idx] = mem
                p, y, v = mem[..., :2], mem[..., 2], v * seen.unsqueeze(-1)
                flags.append(seen.float())
            return features(p, v, y)

        ball_ego, ball_vel_ego = ego_points(ball), ego_vecs(ball_vel)  # [W, A, 1, 2]
        true_ball = (ball_ego.flatten(2), ball_vel_ego.flatten(2))
        if fov:
            seen = self._in_view(ball_ego[:, :, 0], scene.BALL_RADIUS, scene.BALL_RADIUS)  # [W, A]
            self.ball_seen = torch.where(seen.unsqueeze(-1), ball[:, :, 0], self.ball_seen)
            ball_ego = ego_points(self.ball_seen.unsqueeze(2))
            ball_vel_ego = ball_vel_ego * seen[:, :, None, None]
            flags.append(seen.float().unsqueeze(-1))
        mates, opps = others(self._mates), others(self._opps)

        hl = self.half_length[:, None, None]
        hw = self.half_width[:, None, None]
        f = self._flip[None, :, None]
        zero = torch.zeros_like(hl).expand(W, A, 1)
        # Landmarks in the team frame, then to the world: opponent goal, own goal, 4 corners.
        lx = torch.cat(
            (
                hl.expand(W, A, 1),
                -hl.expand(W, A, 1),
                hl.expand(W, A, 1),
                hl.expand(W, A, 1),
                -hl.expand(W, A, 1),
                -hl.expand(W, A, 1),
            ),
            -1,
        )
        ly = torch.cat(
            (zero, zero, hw.expand(W, A, 1), -hw.expand(W, A, 1), hw.expand(W, A, 1), -hw.expand(W, A, 1)), -1
        )
        landmarks = torch.stack((lx * f, ly * f), -1)  # [W, A, 6, 2]
        privileged = torch.cat(
            (
                ball_ego.flatten(2),
                ball_vel_ego.flatten(2),
                mates,
                opps,
                ego_points(landmarks).flatten(2),
                own_vel,
                self.prev_action,
                *flags,  # fov: ball, mates, opponents in view
            ),
            -1,
        )
        # Critic: global state in the team frame, own robot first.
        order = torch.cat((torch.arange(A, device=self.device).unsqueeze(1), self._mates, self._opps), 1)  # [A, A]
        tp = pos[:, order] * f.unsqueeze(-1)  # [W, A, A, 2]
        tv = vel[:, order] * f.unsqueeze(-1)
        tyaw = yaw[:, order] + (f.squeeze(-1) < 0).float().unsqueeze(-1) * math.pi
        robots = torch.cat(
            (tp, torch.cos(tyaw).unsqueeze(-1), torch.sin(tyaw).unsqueeze(-1), tv, wz[:, order].unsqueeze(-1)), -1
        )
        tb = s["ball"][:, None, :2] * f
        tbv = s["ball_vel"][:, None, :2] * f
        time_left = (1 - self.episode_length.float() / self.max_episode_steps)[:, None, None].expand(W, A, 1)
        critic = torch.cat((robots.flatten(2), tb, tbv, hl.expand(W, A, 1), hw.expand(W, A, 1), time_left), -1)
        obs: Obs = {
            "privileged": privileged,
            "critic": critic,
            "proprio": torch.cat((own_vel, self.prev_action), -1),
        }
        if fov:  # the same layout as a global env's privileged group
            tail = (ego_points(landmarks).flatten(2), own_vel, self.prev_action)
            obs["privileged_global"] = torch.cat((*true_ball, *unmasked, *tail), -1)
        if self.cfg.cameras:
            obs.update(self._cameras())
        return obs

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
