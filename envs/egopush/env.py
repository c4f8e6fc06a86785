"""EgoPush: a mobile robot with one egocentric camera pushes boxes into a formation relative to
an anchor, with no global coordinates in what its policies read.

Placement is staged: for each box to place (in order), a *reach* stage (bring the pusher to
the active box) and a *place* stage (push it onto its target). Roles per world and step:
``active`` (the box to push now), ``anchor`` (box 0, or the marked region in ``egopush-goal``),
``obstacle`` (every other box).
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
from envs.egopush import scene
from envs.egopush.tasks import TASKS, target_offsets

OBSERVABILITY = ("global", "fov", "fov_gated")
ROLES = ("active", "anchor", "obstacle")
KP = 4  # keypoints per object: the corners of its footprint


@dataclasses.dataclass(frozen=True)
class RewardScales:
    """Weight of each reward term (0 turns a term off; it is still computed and logged)."""

    stage: float = 1.0
    """Stage completion: ``R * max(0, 1 - t_stage / T_stage)`` (R: ``reach_reward`` or ``place_reward``)."""
    success: float = 1.0
    """1 when the whole formation holds (the episode then ends)."""
    approach: float = 0.0
    """Dense: decrease (m) of the pusher's distance to the active box this step, in the reach stage."""
    progress: float = 0.0
    """Dense: decrease (m) of the active box's distance to its target this step, in the place stage."""
    time: float = 0.0
    """-1 every step (a time penalty when scaled > 0)."""
    anchor: float = 0.0
    """Dense: minus the distance (m) the anchor moved this step. In the line and cross tasks the anchor
    is a box the robot can push, and the targets move with it: pushed against a wall, it leaves
    targets no box can reach (0 in the goal task, whose anchor is a fixed region)."""
    knock: float = 0.0
    """Minus the number of placed boxes knocked out of place this step (in place before it, not
    after). Completing a stage again after a setback pays nothing, which is all a knock-out costs
    without it."""


@dataclasses.dataclass(frozen=True)
class EgoPushConfig:
    """EgoPush room, task, rewards and observations."""

    task: str = "line"
    """``goal`` (one box onto a marked region), ``line`` or ``cross`` (formations around the anchor box)."""
    n_boxes: int = 3
    """Boxes, 2 to 4 (``goal``: 1 to 4, box 0 is pushed, the rest are obstacles)."""
    observability: str = "global"
    """Teacher keypoint visibility: ``global``, ``fov`` (camera frustum and range) or ``fov_gated``."""
    arena_half: float = 2.0
    """Half the side of the square room (m)."""
    timestep: float = 0.01
    """Physics step (s)."""
    n_substeps: int = 5
    """Physics steps per control step: 5 x 10 ms = 20 Hz control."""
    episode_seconds: float = 60.0
    """Time limit (s)."""
    max_speed: float = 0.5
    """Forward speed (m/s) at action 1."""
    max_turn: float = 2.0
    """Yaw rate (rad/s) at action 1."""
    position_tolerance: float = 0.12
    """A box is placed when its centre is within this distance (m) of its target."""
    yaw_tolerance: float | None = None
    """And, if set, its yaw within this (rad) of the anchor's, modulo 90 degrees (boxes are square)."""
    reach_distance: float = 0.32
    """The reach stage ends when the pusher's centre is this close (m) to the active box's centre."""
    reach_reward: float = 1.0
    """R of a reach stage."""
    place_reward: float = 2.0
    """R of a place stage."""
    stage_seconds: float = 20.0
    """T_stage: the stage reward decays to 0 over this time in the stage."""
    camera_range: float = 3.0
    """Farthest keypoint the ``fov`` modes count as visible (m)."""
    gate_fraction: float = 0.3
    """``fov_gated``: the anchor must be within this fraction of the half-width of the image from its centre."""
    memory_seconds: float = 0.0
    """``fov`` modes: 0 shows only what is in view now; > 0 keeps showing a keypoint that left the view, for
    this long, at the world position where it was last seen (in the current robot frame, as odometry would)."""
    reward_scales: RewardScales = RewardScales()
    """Scale of each reward term."""
    cameras: tuple[str, ...] = ()
    """Student images to render: ``depth_layers`` (group of the same name) and/or ``rgb`` (group ``camera``)."""
    camera_resolution: tuple[int, int] = (64, 64)
    """(width, height) of the egocentric images."""
    nthread: int = 0
    """Physics threads for the ``cpu`` backend (0: all cores)."""
    anchor_marker: bool = False
    """Formations: a post on the anchor's top at its +y edge, the side the formation extends to. The
    anchor is a cube, so without it no image tells which of its four sides the targets are on
    (only the teachers' reference keypoints do); visual only, the physics is unchanged."""
    room_keypoints: bool = False
    """Append the room's four inner corners (x, y in the robot frame, shown flag; 12 inputs) to the
    ``privileged`` and ``critic`` groups, after everything else. They stand for the walls, which a
    depth camera sees: in the ``fov`` modes a corner is shown while it is in the camera's frustum and
    range (at a box's mid-height) and for ``memory_seconds`` after; in ``global`` mode, and in
    ``critic``, always. Off by default: the teachers in ``checkpoints/`` read no walls."""

    def validate(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        lo = 1 if self.task == "goal" else 2
        if not lo <= self.n_boxes <= 4:
            raise ValueError(f"n_boxes must be {lo} to 4 for task {self.task!r}, got {self.n_boxes}")
        if self.observability not in OBSERVABILITY:
            raise ValueError(f"observability must be one of {OBSERVABILITY}, got {self.observability!r}")
        if self.memory_seconds < 0:
            raise ValueError(f"memory_seconds must be >= 0, got {self.memory_seconds}")
        bad = [c for c in self.cameras if c not in ("depth_layers", "rgb")]
        if bad:
            raise ValueError(f"cameras must be among ('depth_layers', 'rgb'), got {bad}")
        if self.arena_half < 1.0:
            raise ValueError(f"arena_half must be >= 1.0 m, got {self.arena_half}")


def _rot(v: torch.Tensor, c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Rotate ``[..., 2]`` vectors by the angle with cosine ``c`` and sine ``s`` (broadcast)."""
    return torch.stack((c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]), -1)


class EgoPushEnv(BatchedEnv):
    """Batched EgoPush (one agent per world). See ``EgoPushConfig`` and the README.

    Groups: ``privileged`` ``[12 (3 + n_obstacle_slots) + 5]`` keypoints (x, y in the robot frame,
    visible flag) of the active box, the anchor, each obstacle slot and the active box's target,
    then forward speed, yaw rate, previous action (2), fraction of boxes placed; ``critic``
    the same with every keypoint visible plus time left; ``proprio`` ``[4]`` wheel speeds (m/s)
    and previous action; with cameras, ``depth_layers`` float32 ``[3, H, W]`` (metres, 0 where
    the role is absent) and ``camera`` uint8 ``[3, H, W]``.
    Actions ``[2]`` in [-1, 1]: forward speed, yaw rate.
    """

    act_dim = 2

    def __init__(
        self,
        cfg: EgoPushConfig,
        num_envs: int = 16,
        backend: str = "cpu",
        device: str | None = None,
        name: str = "egopush",
    ) -> None:
        cfg.validate()
        self.cfg = cfg
        self.name = name
        model = mujoco.MjModel.from_xml_string(
            scene.build_xml(
                cfg.n_boxes,
                cfg.arena_half,
                cfg.timestep,
                cfg.max_speed,
                cfg.max_turn,
                cfg.anchor_marker and cfg.task != "goal",
            )
        )
        self.agents = ["robot"]
        self.max_episode_steps = max(1, round(cfg.episode_seconds / (cfg.timestep * cfg.n_substeps)))
        super().__init__(model, num_envs, cfg.n_substeps, backend, device, ("geom_pos",), cfg.nthread)
        dev, W, B = self.device, num_envs, cfg.n_boxes
        self.goal_task = cfg.task == "goal"
        # Placement order: goal pushes box 0 onto the region; formations place boxes 1.. around box 0.
        self.placed = [0] if self.goal_task else list(range(1, B))
        self.n_placed = len(self.placed)
        self._placed_idx = torch.tensor(self.placed, device=dev)
        self._memo: tuple | None = None
        self._arangeP = torch.arange(self.n_placed, device=dev)
        self.offsets = torch.tensor(target_offsets(cfg.task, self.n_placed), device=dev)
        self.n_slots = B - 1  # obstacle slots: every box but the active one (and the anchor box)
        if not self.goal_task:
            self.n_slots = B - 2
        self._init_indices()
        self._w = torch.arange(W, device=dev)
        self._unit_square = torch.tensor([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=torch.float32, device=dev)
        # Obstacle slots per active box: the other boxes but the anchor box, in index order.
        anchor_box = () if self.goal_task else (0,)
        order = [[b for b in range(B) if b != a and b not in anchor_box] for a in range(B)]
        order = [(row + [0] * self.n_slots)[: self.n_slots] for row in order]  # rows never active: filler
        self._obstacle_order = torch.tensor(order, dtype=torch.long, device=dev).view(B, self.n_slots)
        self._ones_kp = torch.ones(W, 3 + self.n_slots, KP, 1, device=dev)
        self.stage = torch.zeros(W, dtype=torch.long, device=dev)
        self.best_stage = torch.zeros(W, dtype=torch.long, device=dev)
        self.stage_steps = torch.zeros(W, dtype=torch.long, device=dev)
        self.reached = torch.zeros(W, dtype=torch.bool, device=dev)
        self.path_length = torch.zeros(W, device=dev)
        self.prev_action = torch.zeros(W, 1, 2, device=dev)
        self.region = torch.zeros(W, 2, device=dev)  # goal region centre (goal task)
        self._prev_dist = torch.zeros(W, 2, device=dev)  # (pusher-active, active-target) distances
        self._act_scale = torch.tensor([cfg.max_speed, cfg.max_turn], device=dev)
        # Keypoint memory (fov modes; with memory_seconds 0 only this step counts): per object (boxes,
        # anchor, targets) each corner's world position when last seen and that episode step (-1: never).
        n_obj = B + 1 + self.n_placed
        self._kp_memory = torch.zeros(W, n_obj, KP, 2, device=dev)
        self._kp_seen_step = torch.full((W, n_obj, KP), -1, dtype=torch.long, device=dev)
        # Room corners (``room_keypoints``): world positions and the episode step each was last seen.
        self._room = self._unit_square * cfg.arena_half  # [4, 2]
        self._room_seen_step = torch.full((W, KP), -1, dtype=torch.long, device=dev)
        # Failed-start replay (a training curriculum, off unless ``replay_failures`` > 0; see there):
        # each world's start state, a buffer of starts whose episodes timed out, and whether the
        # world's episode began from one of them.
        self.replay_failures = 0.0
        nq = self.mj_model.nq
        self._start_qpos = torch.zeros(W, nq, dtype=torch.float64, device=dev)
        self._start_region = torch.zeros(W, 2, device=dev)
        self._failed_qpos = torch.zeros(W, nq, dtype=torch.float64, device=dev)
        self._failed_region = torch.zeros(W, 2, device=dev)
        self._failed_held = torch.zeros(W, dtype=torch.bool, device=dev)
        self._replayed = torch.zeros(W, dtype=torch.bool, device=dev)
        p_dim = 12 * (3 + self.n_slots) + 5 + (3 * KP if cfg.room_keypoints else 0)
        box = gym.spaces.Box
        self.observation_spaces = {
            "privileged": box(-np.inf, np.inf, (p_dim,), np.float32),
            "critic": box(-np.inf, np.inf, (p_dim + 1,), np.float32),
            "proprio": box(-np.inf, np.inf, (4,), np.float32),
        }
        w, h = cfg.camera_resolution
        if "depth_layers" in cfg.cameras:
            self.observation_spaces["depth_layers"] = box(0.0, np.inf, (3, h, w), np.float32)
        if "rgb" in cfg.cameras:
            self.observation_spaces["camera"] = box(0, 255, (3, h, w), np.uint8)
        self._camera_frame()

    # -- model bookkeeping --------------------------------------------------------------------------
    def _init_indices(self) -> None:
        m, B = self.mj_model, self.cfg.n_boxes
        jq = lambda n: int(m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n)])  # noqa: E731
        jv = lambda n: int(m.jnt_dofadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n)])  # noqa: E731
        self._robot_q, self._robot_v = jq("robot_x"), jv("robot_x")
        self._box_q = torch.tensor([jq(f"box{i}_x") for i in range(B)], device=self.device)
        self._region_geom = m.geom("goal_region").id
        act = lambda n: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, n)  # noqa: E731
        self._ctrl_idx = torch.tensor([act("robot_fwd"), act("robot_turn")], device=self.device)
        # Segmentation: geom id + 1 -> object (box i -> i, the region -> B, anything else -> -1).
        obj = torch.full((m.ngeom + 1,), -1, dtype=torch.long)
        for i in range(B):
            obj[m.geom(f"box{i}").id + 1] = i
        if mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "anchor_marker") >= 0:
            obj[m.geom("anchor_marker").id + 1] = 0  # part of the anchor in the role layers
        obj[self._region_geom + 1] = B
        self._geom_object = obj.to(self.device)
        self._geom_pos0 = torch.as_tensor(m.geom_pos.copy(), device=self.device)

    def _camera_frame(self) -> None:
        """The head camera's pose in the robot frame, for projecting keypoints."""
        m = self.mj_model
        cam = m.camera("robot_cam")
        self._cam_pos = torch.as_tensor(cam.pos, dtype=torch.float32, device=self.device)
        quat = cam.quat
        mat = np.zeros(9)
        mujoco.mju_quat2Mat(mat, quat)
        self._cam_mat = torch.as_tensor(mat.reshape(3, 3), dtype=torch.float32, device=self.device)  # columns: axes
        self._tan_half = math.tan(math.radians(float(cam.fovy[0])) / 2)

    def camera_geometry(self) -> dict[str, Any]:
        """What a robot knows of its own body, for a student's map memory (``distill.egomap``): the
        head camera's position ``cam_pos`` and axes ``cam_mat`` (columns) in the robot frame, the
        tangent of half its field of view, its range, the control step (s) and half the wheel track."""
        return {
            "cam_pos": self._cam_pos.tolist(),
            "cam_mat": self._cam_mat.tolist(),
            "tan_half": self._tan_half,
            "camera_range": self.cfg.camera_range,
            "control_dt": self.control_dt,
            "half_track": scene.ROBOT_HALF[1],
        }

    def scripted_policy(self) -> Any:
        """The hand-written EgoPush player (``envs.egopush.scripted.ScriptedEgoPush``)."""
        from envs.egopush.scripted import ScriptedEgoPush

        return ScriptedEgoPush(self.n_slots)

    def keypoint_geometry(self) -> dict[str, Any]:
        """``camera_geometry`` and what a robot knows of its task, for a student's geometric
        keypoints (``distill.egogeom``): the cube's half-side, the formation's target offsets in the
        anchor's frame ``[P, 2]``, the teacher's keypoint rules (``observability``, ``memory_seconds``,
        ``gate_fraction``) and the number of boxes."""
        cfg = self.cfg
        return {
            **self.camera_geometry(),
            "box_half": scene.BOX_HALF,
            "offsets": self.offsets.float().cpu().tolist(),
            "observability": cfg.observability,
            "memory_seconds": cfg.memory_seconds,
            "gate_fraction": cfg.gate_fraction,
            "n_boxes": cfg.n_boxes,
            "task": cfg.task,
            "position_tolerance": cfg.position_tolerance,
            "room_keypoints": cfg.room_keypoints,
        }

    def _reward_scales(self) -> dict[str, float]:
        return dataclasses.asdict(self.cfg.reward_scales)

    # -- state ------------------------------------------------------------------------------------
    def _state(self) -> dict[str, torch.Tensor]:
        """State and what follows from it (targets, placed boxes, active box), computed once per
        state: the key changes with every physics step or reset and every in-place write
        (tensor ``_version``) to the state, the world fields or the region."""
        key = (
            self.sim.version,
            self.sim.qpos._version,
            self.sim.qvel._version,
            self.sim.field("geom_pos")._version,
            self.region._version,
        )
        if self._memo is not None and self._memo[0] == key:
            return self._memo[1]
        s = self._raw_state()
        s["anchor_pos"], s["anchor_yaw"] = self._anchor_pose(s)
        s["targets"] = self._targets(s)
        s["placed"] = self._placed(s)
        s["k"] = self._active_index(s["placed"])  # P when every box is placed
        s["kc"] = s["k"].clamp(max=self.n_placed - 1)
        s["active"] = self._placed_idx[s["kc"]]  # box index of the active box
        self._memo = (key, s)
        return s

    def _raw_state(self) -> dict[str, torch.Tensor]:
        q, v = self.sim.qpos, self.sim.qvel
        r = self._robot_q
        bq = self._box_q.unsqueeze(1) + torch.arange(3, device=self.device)  # [B, 3]
        boxes = q[:, bq].float()  # [W, B, 3]
        rv = v[:, self._robot_v : self._robot_v + 3].float()
        yaw = q[:, r + 2].float()
        c, s = torch.cos(yaw), torch.sin(yaw)
        fwd = c * rv[:, 0] + s * rv[:, 1]
        return {
            "pos": q[:, r : r + 2].float(),
            "yaw": yaw,
            "fwd": fwd,
            "wz": rv[:, 2],
            "box_pos": boxes[..., :2],
            "box_yaw": boxes[..., 2],
        }

    def _anchor_pose(self, s: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Anchor centre ``[W, 2]`` and yaw ``[W]`` (the region has yaw 0)."""
        if self.goal_task:
            return self.region, torch.zeros_like(self.region[:, 0])
        return s["box_pos"][:, 0], s["box_yaw"][:, 0]

    def _targets(self, s: dict[str, torch.Tensor]) -> torch.Tensor:
        """World target centres of the placed boxes, ``[W, P, 2]``."""
        apos, ayaw = s["anchor_pos"], s["anchor_yaw"]
        c, si = torch.cos(ayaw)[:, None], torch.sin(ayaw)[:, None]
        return apos[:, None] + _rot(self.offsets[None].expand(self.num_envs, -1, -1), c, si)

    def placed_mask(self) -> torch.Tensor:
        """``[W, P]`` whether each box to place is within tolerance of its target now."""
        return self._state()["placed"]

    def _placed(self, s: dict[str, torch.Tensor]) -> torch.Tensor:
        idx = self._placed_idx
        err = (s["box_pos"][:, idx] - s["targets"]).norm(dim=-1)
        ok = err < self.cfg.position_tolerance
        if self.cfg.yaw_tolerance is not None:
            ayaw = s["anchor_yaw"]
            d = torch.remainder(s["box_yaw"][:, idx] - ayaw[:, None] + math.pi / 4, math.pi / 2) - math.pi / 4
            ok &= d.abs() < self.cfg.yaw_tolerance
        return ok

    def _active_index(self, placed: torch.Tensor) -> torch.Tensor:
        """Placement index of the active box: the first not in place (``P`` when all are)."""
        rank = torch.where(placed, self.n_placed, self._arangeP)
        return rank.min(1).values

    def pusher(self, s: dict[str, torch.Tensor]) -> torch.Tensor:
        """World position of the pusher plate's centre, ``[W, 2]``."""
        d = scene.ROBOT_HALF[0] + 2 * scene.PUSHER_HALF[0]
        return s["pos"] + d * torch.stack((torch.cos(s["yaw"]), torch.sin(s["yaw"])), -1)

    # -- resets -----------------------------------------------------------------------------------
    def _sample_free(self, k: int, taken: list[torch.Tensor], lim: float, clearance: float) -> torch.Tensor:
        """Per world a point in ``[-lim, lim]^2`` at least ``clearance`` from every point in ``taken``."""
        g = self.generator
        cand = (torch.rand(k, 64, 2, generator=g) * 2 - 1).to(self.device) * lim
        ok = torch.ones(k, 64, dtype=torch.bool, device=self.device)
        for t in taken:
            ok &= (cand - t[:, None]).norm(dim=-1) > clearance
        # The first valid candidate; if none (very unlikely), the one farthest from the others.
        score = ok.float() * 2 + torch.linspace(1, 0, 64, device=self.device)
        if taken:
            score = torch.where(
                ok.any(1, keepdim=True),
                score,
                torch.stack([(cand - t[:, None]).norm(dim=-1) for t in taken]).min(0).values,
            )
        return cand[torch.arange(k, device=self.device), score.argmax(1)]

    def _replay_starts(self, ids: torch.Tensor, qpos: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
        """Failed-start replay, in place on the fresh starts ``qpos`` ``[k, nq]`` of worlds ``ids``:
        first keep the starts of the episodes now ending by timeout (the task not done) in the buffer
        (a free slot, else a random one), then with probability ``replay_failures`` give each world a
        start drawn from it (each drawn start leaves the buffer; failing again puts it back). Returns
        the region centres (the goal task's marked region; the anchor otherwise, unused)."""
        g, W = self.generator, self.num_envs
        timed_out = (self.episode_length[ids] >= self.max_episode_steps) & (self.stage[ids] < 2 * self.n_placed)
        failed = ids[timed_out]
        if len(failed):
            score = torch.rand(W, generator=g).to(self.device) + 2.0 * (~self._failed_held).float()
            slots = score.topk(len(failed)).indices  # at most W: the worlds ending now
            self._failed_qpos[slots] = self._start_qpos[failed]
            self._failed_region[slots] = self._start_region[failed]
            self._failed_held[slots] = True
        want = (torch.rand(len(ids), generator=g) < self.replay_failures).to(self.device)
        held = int(self._failed_held.sum())
        n = min(int(want.sum()), held)
        replayed = torch.zeros(len(ids), dtype=torch.bool, device=self.device)
        if n:
            score = torch.rand(W, generator=g).to(self.device) + 2.0 * self._failed_held.float()
            slots = score.topk(n).indices
            rows = want.nonzero().flatten()[:n]
            qpos[rows] = self._failed_qpos[slots].to(qpos)
            region = region.clone()
            region[rows] = self._failed_region[slots]
            self._failed_held[slots] = False
            replayed[rows] = True
        self._replayed[ids] = replayed
        return region

    def _reset_worlds(self, ids: torch.Tensor) -> None:
        cfg, g, k, B = self.cfg, self.generator, len(ids), self.cfg.n_boxes
        rand = lambda *shape: torch.rand(*shape, generator=g).to(self.device)  # noqa: E731
        qpos = torch.as_tensor(self.mj_model.qpos0, device=self.device).repeat(k, 1)
        # The formation, plus room for the robot to work round its outer boxes, fits in the room.
        reach = float(self.offsets.norm(dim=-1).max()) + scene.BOX_HALF + 0.7
        lim_anchor = max(0.1, cfg.arena_half - reach)
        anchor = (rand(k, 2) * 2 - 1) * lim_anchor
        ayaw = (rand(k) * 2 - 1) * math.pi
        if self.goal_task:
            anchor_yaw = torch.zeros(k, device=self.device)
        else:
            anchor_yaw = ayaw
        c, s = torch.cos(anchor_yaw)[:, None], torch.sin(anchor_yaw)[:, None]
        targets = anchor[:, None] + _rot(self.offsets[None].expand(k, -1, -1), c, s)
        taken = [anchor] + [targets[:, j] for j in range(self.n_placed)]
        # Boxes start far enough from the walls for the robot to get behind them.
        lim = cfg.arena_half - 0.65
        box_xy = torch.zeros(k, B, 2, device=self.device)
        first = 0
        if not self.goal_task:
            box_xy[:, 0] = anchor
            first = 1
        for i in range(first, B):
            box_xy[:, i] = self._sample_free(k, taken, lim, 0.55)
            taken.append(box_xy[:, i])
        robot = self._sample_free(k, taken, cfg.arena_half - 0.4, 0.5)
        for i in range(B):
            adr = int(self._box_q[i])
            qpos[:, adr : adr + 2] = box_xy[:, i]
            qpos[:, adr + 2] = anchor_yaw if (i == 0 and not self.goal_task) else (rand(k) * 2 - 1) * math.pi
        r = self._robot_q
        qpos[:, r : r + 2] = robot
        qpos[:, r + 2] = (rand(k) * 2 - 1) * math.pi
        if self.replay_failures > 0:
            anchor = self._replay_starts(ids, qpos, anchor)
        self._start_qpos[ids] = qpos.to(self._start_qpos)
        self._start_region[ids] = anchor
        self.sim.reset(ids, qpos)
        # The marked region: on the floor in egopush-goal, out of sight under it otherwise.
        gp = self.sim.field("geom_pos")
        reg = self._geom_pos0[self._region_geom].repeat(k, 1)
        if self.goal_task:
            reg[:, :2] = anchor
            self.region[ids] = anchor
        else:
            reg[:, 2] = -1.0
        gp[ids, self._region_geom] = reg.to(gp)
        self.stage[ids] = 0
        self.best_stage[ids] = 0
        self.stage_steps[ids] = 0
        self.reached[ids] = False
        self.path_length[ids] = 0.0
        self.prev_action[ids] = 0.0
        self._kp_seen_step[ids] = -1
        self._room_seen_step[ids] = -1
        self._prev_dist[ids] = self._distances(self._state())[ids]

    def _distances(self, s: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[W, 2]``: pusher to active box, active box to its target (0 when all are placed)."""
        w = self._w
        box = s["box_pos"][w, s["active"]]
        tgt = s["targets"][w, s["kc"]]
        return torch.stack(((self.pusher(s) - box).norm(dim=-1), (box - tgt).norm(dim=-1)), -1)

    # -- step ----------------------------------------------------------------------------------------
    def _apply_actions(self, actions: torch.Tensor) -> None:
        before = self.sim.qpos[:, self._robot_q : self._robot_q + 2].float().clone()
        self._pos_before = before
        s = self._state()
        self._anchor_before = s["anchor_pos"].clone()
        self._placed_before = s["placed"].clone()
        self.prev_action = actions
        ctrl = (actions[:, 0] * self._act_scale).to(self.sim.ctrl)
        self.sim.ctrl[:, self._ctrl_idx.to(self.sim.ctrl.device)] = ctrl

    def _evaluate(self) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, Any]]:
        cfg = self.cfg
        s = self._state()
        self.path_length += (s["pos"] - self._pos_before).norm(dim=-1)
        placed = s["placed"]
        k = s["k"]
        success = k >= self.n_placed
        dist = self._distances(s)
        phase = self.stage % 2
        stage_k = self.stage // 2
        self.stage_steps += 1
        t_frac = self.stage_steps.float() / max(1.0, cfg.stage_seconds / self.control_dt)
        decay = (1 - t_frac).clamp(min=0.0)
        stage_reward = torch.zeros(self.num_envs, device=self.device)
        # Reach: the pusher got to the active box.
        reached_now = (phase == 0) & (stage_k == k) & (dist[:, 0] < cfg.reach_distance)
        # Place: the active box of the place stage is now in place (the first not-placed moved on).
        placed_now = (phase == 1) & (k > stage_k)
        new_stage = self.stage.clone()
        new_stage = torch.where(reached_now, self.stage + 1, new_stage)
        new_stage = torch.where(placed_now | ((phase == 0) & (k > stage_k)), 2 * k, new_stage)
        # A placed box knocked out of place makes it active again: back to its reach stage.
        new_stage = torch.where(k < stage_k, 2 * k, new_stage)
        completed = reached_now | placed_now
        pay = completed & (new_stage > self.best_stage)
        r_stage = torch.where(reached_now, cfg.reach_reward, cfg.place_reward)
        stage_reward = torch.where(pay, r_stage * decay, stage_reward)
        changed = new_stage != self.stage
        self.stage = torch.where(success, 2 * self.n_placed, new_stage)
        self.best_stage = torch.maximum(self.best_stage, self.stage)
        self.stage_steps = torch.where(changed, 0, self.stage_steps)
        self.reached |= reached_now
        approach = torch.where((self.stage % 2 == 0) & ~changed, self._prev_dist[:, 0] - dist[:, 0], 0.0)
        progress = torch.where((self.stage % 2 == 1) & ~changed, self._prev_dist[:, 1] - dist[:, 1], 0.0)
        self._prev_dist = dist
        terms = {
            "stage": stage_reward[:, None],
            "success": success.float()[:, None],
            "approach": approach[:, None],
            "progress": progress[:, None],
            "time": -torch.ones(self.num_envs, 1, device=self.device),
            "anchor": -(s["anchor_pos"] - self._anchor_before).norm(dim=-1)[:, None],
            "knock": -(self._placed_before & ~placed).sum(1).float()[:, None],
        }
        info = {
            "success": success.clone(),
            "stage": self.stage.clone(),
            "reach": self.reached.clone(),
            "path_length": self.path_length.clone(),
            "placed": placed.sum(1),
        }
        if self.replay_failures > 0:
            info["replayed"] = self._replayed.clone()  # this episode began from a failed start
        return terms, success.clone(), info

    # -- observations -------------------------------------------------------------------------------
    def _corners(self, pos: torch.Tensor, yaw: torch.Tensor, half: float) -> torch.Tensor:
        """World corners ``[..., 4, 2]`` of squares of half-side ``half`` at ``pos`` ``[..., 2]``."""
        unit = self._unit_square * half
        c, s = torch.cos(yaw)[..., None], torch.sin(yaw)[..., None]
        return pos[..., None, :] + _rot(unit, c, s)

    def _keypoint_groups(self, s: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """World keypoints of the active box, anchor, obstacles and reference ``[W, 3 + slots, 4, 2]``,
        and the box index of the active box ``[W]``."""
        w = self._w
        k, active = s["kc"], s["active"]
        box_kp = self._corners(s["box_pos"], s["box_yaw"], scene.BOX_HALF)  # [W, B, 4, 2]
        apos, ayaw = s["anchor_pos"], s["anchor_yaw"]
        anchor_half = scene.GOAL_HALF if self.goal_task else scene.BOX_HALF
        anchor_kp = self._corners(apos, ayaw, anchor_half)
        tgt = s["targets"][w, k]
        ref_kp = self._corners(tgt, ayaw, scene.BOX_HALF)
        # Obstacles: every box that is neither the active one nor the anchor box, in index order.
        obst_kp = box_kp[w[:, None], self._obstacle_order[active]]  # [W, slots, 4, 2]
        kp = torch.cat((box_kp[w, active][:, None], anchor_kp[:, None], obst_kp, ref_kp[:, None]), 1)
        return kp, active

    def _slot_objects(self, active: torch.Tensor, kc: torch.Tensor) -> torch.Tensor:
        """``[W, G]`` object of each keypoint slot (memory index): box ``i`` -> ``i``, the anchor -> ``B``,
        the target of placement ``j`` -> ``B + 1 + j``."""
        B = self.cfg.n_boxes
        anchor = torch.full_like(active, B)
        return torch.cat((active[:, None], anchor[:, None], self._obstacle_order[active], (B + 1 + kc)[:, None]), 1)

    def _remember(
        self, s: dict[str, torch.Tensor], kp: torch.Tensor, vis: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the keypoints in view, then return every slot's remembered world keypoints
        ``[W, G, 4, 2]`` and its flag ``[W, G, 4]``: 1 if seen in the last ``memory_seconds``, else 0.
        The flag reads as in ``global`` mode (1: shown), so a ``global`` teacher's inputs carry over."""
        rows = self._w[:, None]
        obj = self._slot_objects(s["active"], s["kc"])
        mem = torch.where(vis[..., None], kp, self._kp_memory[rows, obj])
        step = torch.where(vis, self.episode_length[:, None, None], self._kp_seen_step[rows, obj])
        self._kp_memory[rows, obj] = mem
        self._kp_seen_step[rows, obj] = step
        return mem, self._recent(step)

    def _recent(self, step: torch.Tensor) -> torch.Tensor:
        """1 where the episode step ``step`` ``[W, ...]`` a keypoint was last seen (-1: never) lies
        within the last ``memory_seconds``, else 0."""
        shape = [self.num_envs] + [1] * (step.dim() - 1)
        age = (self.episode_length.view(shape) - step).float() * self.control_dt
        return ((step >= 0) & (age <= self.cfg.memory_seconds)).float()

    def _to_robot(self, s: dict[str, torch.Tensor], pts: torch.Tensor) -> torch.Tensor:
        """World points ``[W, ..., 2]`` into the robot frame."""
        shape = [self.num_envs] + [1] * (pts.dim() - 2)
        c = torch.cos(s["yaw"]).view(shape)
        si = torch.sin(s["yaw"]).view(shape)
        d = pts - s["pos"].view(*shape[:1], *shape[1:], 2)
        return _rot(d, c, -si)

    def project(self, pts_robot: torch.Tensor, height: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Robot-frame points at ``height`` -> (image u, v in [-1, 1] at the edges, depth m)."""
        p = torch.cat((pts_robot, torch.full_like(pts_robot[..., :1], height)), -1) - self._cam_pos
        cam = p @ self._cam_mat  # coordinates along the camera's x, y, z axes
        depth = -cam[..., 2]  # MuJoCo cameras look along -z
        safe = depth.clamp(min=1e-6)
        return cam[..., 0] / safe / self._tan_half, cam[..., 1] / safe / self._tan_half, depth

    def _in_view(self, pts_robot: torch.Tensor) -> torch.Tensor:
        """Whether robot-frame points ``[W, ..., 2]`` at a box's mid-height are inside the camera's
        frustum and range."""
        u, v, depth = self.project(pts_robot, scene.BOX_HALF)
        return (u.abs() <= 1) & (v.abs() <= 1) & (depth > 0.05) & (depth <= self.cfg.camera_range)

    def _visibility(self, kp_robot: torch.Tensor) -> torch.Tensor:
        """``[W, G, 4]`` visibility of keypoints in the ``fov`` modes: inside the camera's frustum
        and range (and, ``fov_gated``, the reference only while the anchor is near the centre)."""
        vis = self._in_view(kp_robot)
        if self.cfg.observability == "fov_gated":
            # The reference is shown only while the anchor's centre is in view near the image centre.
            centre = kp_robot[:, 1].mean(1)  # anchor centre [W, 2]
            cu, cv, cd = self.project(centre, scene.BOX_HALF if not self.goal_task else 0.0)
            gated = (cu.abs() <= self.cfg.gate_fraction) & (cv.abs() <= 1) & (cd > 0.05) & (cd <= self.cfg.camera_range)
            vis[:, -1] &= gated[:, None]
        return vis

    def _observe(self) -> Obs:
        s = self._state()
        kp, active = self._keypoint_groups(s)
        kp_r = self._to_robot(s, kp)  # [W, G, 4, 2]
        full = torch.cat((kp_r, self._ones_kp), -1).flatten(1)
        if self.cfg.observability == "global":
            masked = full
        else:  # memory_seconds 0: what is in view now, the same mechanism with no memory span
            mem, flag = self._remember(s, kp, self._visibility(kp_r))
            flag = flag.unsqueeze(-1)
            masked = torch.cat((self._to_robot(s, mem) * flag, flag), -1).flatten(1)
        placed_frac = s["placed"].float().mean(1, keepdim=True)
        robot = torch.cat((s["fwd"][:, None], s["wz"][:, None], self.prev_action[:, 0], placed_frac), -1)
        time_left = 1 - self.episode_length.float()[:, None] / self.max_episode_steps
        half_track = scene.ROBOT_HALF[1]
        wheels = torch.stack((s["fwd"] - s["wz"] * half_track, s["fwd"] + s["wz"] * half_track), -1)
        priv, crit = [masked, robot], [full, robot, time_left]
        if self.cfg.room_keypoints:
            shown, every = self._room_keypoints(s)
            priv.append(shown)
            crit.append(every)
        obs: Obs = {
            "privileged": torch.cat(priv, -1)[:, None],
            "critic": torch.cat(crit, -1)[:, None],
            "proprio": torch.cat((wheels, self.prev_action[:, 0]), -1)[:, None],
        }
        if self.cfg.cameras:
            obs.update(self._cameras(active))
        return obs

    def _room_keypoints(self, s: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The room's corners ``[W, 12]`` as the actor is shown them (x, y zeroed where not shown,
        then the flags), and ``[W, 12]`` all shown (the critic's). A corner does not move, so the
        memory is only when it was last seen."""
        room = self._to_robot(s, self._room.expand(self.num_envs, -1, -1))  # [W, 4, 2]
        ones = torch.ones_like(room[..., :1])
        every = torch.cat((room, ones), -1).flatten(1)
        if self.cfg.observability == "global":
            return every, every
        step = torch.where(self._in_view(room), self.episode_length[:, None], self._room_seen_step)
        self._room_seen_step = step
        flag = self._recent(step)[..., None]
        return torch.cat((room * flag, flag), -1).flatten(1), every

    def appended_dims(self, group: str, source_config: dict[str, Any]) -> int:
        """How many inputs this env's ``group`` appends at its end to the same env under
        ``source_config`` (an ``EgoPushConfig`` as a dict, e.g. a checkpoint's ``env_config``; the rest
        is laid out alike): what a warm start from it must add (``room_keypoints``)."""
        if group not in ("privileged", "critic"):
            return 0
        mine, theirs = self.cfg.room_keypoints, bool(source_config.get("room_keypoints", False))
        return 3 * KP * (int(mine) - int(theirs))

    def roles(self, active: torch.Tensor) -> torch.Tensor:
        """``[W, B + 1]`` role index (0 active, 1 anchor, 2 obstacle) of each box and the region."""
        W, B = self.num_envs, self.cfg.n_boxes
        role = torch.full((W, B + 1), 2, dtype=torch.long, device=self.device)
        if self.goal_task:
            role[:, B] = 1
        else:
            role[:, 0] = 1
            role[:, B] = -1
        role[torch.arange(W, device=self.device), active] = 0
        return role

    def _cameras(self, active: torch.Tensor) -> Obs:
        mods = tuple(
            m
            for m, c in (("rgb", "rgb"), ("depth", "depth_layers"), ("segmentation", "depth_layers"))
            if c in self.cfg.cameras
        )
        img = self.render_cameras(["robot_cam"], self.cfg.camera_resolution, tuple(dict.fromkeys(mods)))
        out: Obs = {}
        if "rgb" in img:
            out["camera"] = img["rgb"]
        if "depth_layers" in self.cfg.cameras:
            seg = img["segmentation"][:, 0, 0].long() + 1  # [W, H, Wd], background 0
            obj = self._geom_object[seg]  # object index or -1
            role_tab = torch.cat(
                (self.roles(active), torch.full((self.num_envs, 1), -1, dtype=torch.long, device=self.device)), 1
            )
            role = role_tab.gather(1, torch.where(obj < 0, role_tab.shape[1] - 1, obj).flatten(1)).view_as(obj)
            depth = img["depth"][:, 0, 0]
            layers = torch.stack([torch.where(role == r, depth, 0.0) for r in range(3)], 1)
            out["depth_layers"] = layers[:, None]
        return out
