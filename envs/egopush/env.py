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
from envs.egopush.config import KP, EgoPushConfig
from envs.egopush.plane import keypoint_tables, rot, row
from envs.egopush.sensors import camera_groups, camera_modalities, identity_order, role_table, wheel_readings
from envs.egopush.start_replay import FailedStartReplay
from envs.egopush.starts import sample_start
from envs.egopush.tasks import target_offsets
from envs.egopush.view import CameraView, KeypointMemory


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
        self.formation_reach = float(self.offsets.norm(dim=-1).max())  # the farthest target from the anchor (m)
        self.n_slots = B - 1  # obstacle slots: every box but the active one (and the anchor box)
        if not self.goal_task:
            self.n_slots = B - 2
        self._init_indices()
        self._w = torch.arange(W, device=dev)  # unused, kept: saved runs' snapshots hold it
        self._unit_square = torch.tensor([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=torch.float32, device=dev)
        # Obstacle slots per active box: the other boxes but the anchor box, in index order.
        anchor_box = () if self.goal_task else (0,)
        order = [[b for b in range(B) if b != a and b not in anchor_box] for a in range(B)]
        order = [(others + [0] * self.n_slots)[: self.n_slots] for others in order]  # rows never active: filler
        self.obstacle_order = torch.tensor(order, dtype=torch.long, device=dev).view(B, self.n_slots)
        self._ones_kp = torch.ones(W, 3 + self.n_slots, KP, 1, device=dev)
        # Keypoint slots per active box, and the corners' offsets of every square computed together.
        self.consts.slot_rows, self.consts.square, self.consts.square_flip = keypoint_tables(
            self.obstacle_order, self.goal_task, self._unit_square
        )
        # Constants of the step (in ``consts``: a [W, ...] attribute would count as per-world state).
        self.consts.minus_ones = -torch.ones(W, 1, device=dev)  # the time term
        self.consts.odd_col = torch.tensor([[False, True]], device=dev)  # approach, progress: which stage parity
        self.stage = torch.zeros(W, dtype=torch.long, device=dev)
        # Options a robot's sensors add (off by default, and then absent: nothing drawn, nothing saved):
        # each object's depth layer by identity, drawn per episode; each wheel's reading scale.
        if cfg.depth_layers == "identity":
            self.identity = torch.full((W, B + 1), -1, dtype=torch.long, device=dev)
        if cfg.wheel_slip > 0:
            self.wheel_scale = torch.ones(W, 2, device=dev)
        self.best_stage = torch.zeros(W, dtype=torch.long, device=dev)
        self.stage_steps = torch.zeros(W, dtype=torch.long, device=dev)
        self.reached = torch.zeros(W, dtype=torch.bool, device=dev)
        self.path_length = torch.zeros(W, device=dev)
        self.prev_action = torch.zeros(W, 1, 2, device=dev)
        self.region = torch.zeros(W, 2, device=dev)  # goal region centre (goal task)
        self._prev_dist = torch.zeros(W, 2, device=dev)  # (pusher-active, active-target) distances
        self._act_scale = torch.tensor([cfg.max_speed, cfg.max_turn], device=dev)
        # What the fov teachers see: the camera's frustum, and the keypoint memory (boxes, anchor, targets).
        self.view = CameraView(self.mj_model, cfg, self.goal_task, dev)
        self.memory = KeypointMemory(W, B + 1 + self.n_placed, cfg.memory_seconds, self.control_dt, dev)
        self._room = self._unit_square * cfg.arena_half  # room corners (``room_keypoints``) [4, 2]
        self.start_replay: FailedStartReplay | None = None  # a training curriculum: replay_failed_starts
        self._masked_resets = self._masked_resets and self.masked_resets_refused() is None
        p_dim = 12 * (3 + self.n_slots) + 5 + (3 * KP if cfg.room_keypoints else 0)
        box = gym.spaces.Box
        self.observation_spaces = {
            "privileged": box(-np.inf, np.inf, (p_dim,), np.float32),
            "critic": box(-np.inf, np.inf, (p_dim + 1,), np.float32),
            "proprio": box(-np.inf, np.inf, (4,), np.float32),
        }
        w, h = cfg.camera_resolution
        if "depth_layers" in cfg.cameras:
            n_layers = 3 if cfg.depth_layers == "role" else B + int(self.goal_task)
            self.observation_spaces["depth_layers"] = box(0.0, np.inf, (n_layers, h, w), np.float32)
        if "rgb" in cfg.cameras:
            self.observation_spaces["camera"] = box(0, 255, (3, h, w), np.uint8)

    # -- model bookkeeping --------------------------------------------------------------------------
    def _init_indices(self) -> None:
        m, B = self.mj_model, self.cfg.n_boxes
        jq = lambda n: int(m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n)])  # noqa: E731
        jv = lambda n: int(m.jnt_dofadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n)])  # noqa: E731
        self.robot_qadr, self.robot_vadr = jq("robot_x"), jv("robot_x")
        self.box_qadr = torch.tensor([jq(f"box{i}_x") for i in range(B)], device=self.device)
        self.consts.box_q_idx = (self.box_qadr.unsqueeze(1) + torch.arange(3, device=self.device)).flatten()  # [3B]
        # The robot's (x, y, yaw) then every box's: one gather per state.
        robot_q = torch.arange(self.robot_qadr, self.robot_qadr + 3, device=self.device)
        self.consts.pose_q_idx = torch.cat((robot_q, self.consts.box_q_idx))
        self.box_qadr_list = [jq(f"box{i}_x") for i in range(B)]  # the same as ints: no device read per start
        self.consts.qpos0 = torch.as_tensor(m.qpos0, device=self.device)
        self.region_geom = m.geom("goal_region").id
        act = lambda n: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, n)  # noqa: E731
        self._ctrl_idx = torch.tensor([act("robot_fwd"), act("robot_turn")], device=self.device)
        # Segmentation: geom id + 1 -> object (box i -> i, the region -> B, anything else -> -1).
        obj = torch.full((m.ngeom + 1,), -1, dtype=torch.long)
        for i in range(B):
            obj[m.geom(f"box{i}").id + 1] = i
        if mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "anchor_marker") >= 0:
            obj[m.geom("anchor_marker").id + 1] = 0  # part of the anchor in the role layers
        obj[self.region_geom + 1] = B
        self._geom_object = obj.to(self.device)
        self._geom_pos0 = torch.as_tensor(m.geom_pos.copy(), device=self.device)

    def camera_geometry(self) -> dict[str, Any]:
        """What a robot knows of its own body, for a student's map memory (``distill.egopush.odometry_map``): the
        head camera's position ``cam_pos`` and axes ``cam_mat`` (columns) in the robot frame, the
        tangent of half its field of view, its range, the control step (s) and half the wheel track."""
        return {
            "cam_pos": self.view.cam_pos.tolist(),
            "cam_mat": self.view.cam_mat.tolist(),
            "tan_half": self.view.tan_half,
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
        keypoints (``distill.egopush.geometry``): the cube's half-side, the formation's target offsets in the
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

    def reward_scales(self) -> dict[str, float]:
        return dataclasses.asdict(self.cfg.reward_scales)

    # -- state ------------------------------------------------------------------------------------
    def task_state(self) -> dict[str, torch.Tensor]:
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
        """The robot's pose (``pos``, ``yaw``, and ``cos``, ``sin`` of it), speeds (``fwd``, ``wz``) and
        the boxes' poses (``box_pos`` ``[W, B, 2]``, ``box_yaw``)."""
        pose = self.sim.qpos.index_select(1, self.consts.pose_q_idx).float()  # [W, 3 + 3B]
        boxes = pose[:, 3:].view(self.num_envs, -1, 3)  # [W, B, 3]
        rv = self.sim.qvel[:, self.robot_vadr : self.robot_vadr + 3].float()
        yaw = pose[:, 2]
        c, s = torch.cos(yaw), torch.sin(yaw)
        fwd = c * rv[:, 0] + s * rv[:, 1]
        return {
            "pos": pose[:, :2],
            "yaw": yaw,
            "cos": c,
            "sin": s,
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
        return apos[:, None] + rot(self.offsets[None].expand(self.num_envs, -1, -1), c, si)

    def placed_mask(self) -> torch.Tensor:
        """``[W, P]`` whether each box to place is within tolerance of its target now."""
        return self.task_state()["placed"]

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
        """World position of the pusher plate's centre, ``[W, 2]`` (``s``: ``pos`` and ``yaw``, or a task state)."""
        d = scene.ROBOT_HALF[0] + 2 * scene.PUSHER_HALF[0]
        c, si = (s["cos"], s["sin"]) if "cos" in s else (torch.cos(s["yaw"]), torch.sin(s["yaw"]))
        return s["pos"] + d * torch.stack((c, si), -1)

    # -- resets -----------------------------------------------------------------------------------
    def replay_failed_starts(self, probability: float) -> None:
        """Train with failed-start replay (``envs.egopush.start_replay``): from the next reset on,
        timed-out starts come round again with ``probability``; ``info["replayed"]`` marks them. Its
        draws come from the shared generator, so resets go by index from then on (``masked_resets``)."""
        self._masked_resets = False
        self.start_replay = FailedStartReplay(probability, self.num_envs, self.mj_model.nq, self.device)

    def masked_resets_refused(self) -> str | None:
        if self.start_replay is not None:
            return "failed-start replay draws its starts from the shared generator"
        if self.cfg.wheel_noise > 0:
            return "wheel_noise draws from the shared generator at every observation"
        return None

    def _reset_worlds(self, ids: torch.Tensor) -> None:
        k, draw = len(ids), self.draws(ids)
        qpos, anchor = sample_start(self, draw)
        if self.start_replay is not None:  # a curriculum the worlds share: the shared generator
            timed_out = (self.episode_length[ids] >= self.max_episode_steps) & (self.stage[ids] < 2 * self.n_placed)
            anchor = self.start_replay.draw(ids, timed_out, qpos, anchor, self.generator)
        self.sim.reset(ids, qpos)
        # The marked region: on the floor in egopush-goal, out of sight under it otherwise.
        gp = self.sim.field("geom_pos")
        reg = self._geom_pos0[self.region_geom].repeat(k, 1)
        if self.goal_task:
            reg[:, :2] = anchor
            self.region[ids] = anchor
        else:
            reg[:, 2] = -1.0
        gp[ids, self.region_geom] = reg.to(gp)
        self.stage[ids] = 0
        self.best_stage[ids] = 0
        self.stage_steps[ids] = 0
        self.reached[ids] = False
        self.path_length[ids] = 0.0
        self.prev_action[ids] = 0.0
        self.memory.forget(ids)
        if self.cfg.depth_layers == "identity":
            self.identity[ids] = identity_order(draw, self.cfg.n_boxes, self.goal_task)
        if self.cfg.wheel_slip > 0:
            self.wheel_scale[ids] = 1 + self.cfg.wheel_slip * (draw.rand(2) * 2 - 1)
        self._prev_dist[ids] = self._distances(self.task_state())[ids]

    def _distances(self, s: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[W, 2]``: pusher to active box, active box to its target (0 when all are placed)."""
        box = row(s["box_pos"], s["active"])
        tgt = row(s["targets"], s["kc"])
        return torch.stack(((self.pusher(s) - box).norm(dim=-1), (box - tgt).norm(dim=-1)), -1)

    # -- step ----------------------------------------------------------------------------------------
    def _apply_actions(self, actions: torch.Tensor) -> None:
        s = self.task_state()
        # Read again in ``_evaluate`` of this step, before any reset: a state's tensors are never written
        # in place (a new state computes new ones; resets replace the region), so no copies.
        self._pos_before = s["pos"]
        self._anchor_before = s["anchor_pos"]
        self._placed_before = s["placed"]
        self.prev_action = actions
        ctrl = (actions[:, 0] * self._act_scale).to(self.sim.ctrl)
        self.sim.ctrl.index_copy_(1, self._ctrl_idx, ctrl)

    def _evaluate(self) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, Any]]:
        cfg = self.cfg
        s = self.task_state()
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
        # Reach: the pusher got to the active box.
        reached_now = (phase == 0) & (stage_k == k) & (dist[:, 0] < cfg.reach_distance)
        # Place: the active box of the place stage is now in place (the first not-placed moved on).
        placed_now = (phase == 1) & (k > stage_k)
        # The first box not in place moved (on: placed, or skipped at reach; back: a placed box knocked
        # out of place is active again): its reach stage. Else a reach moves to the place stage.
        new_stage = torch.where(k != stage_k, 2 * k, self.stage + reached_now.long())
        pay = (reached_now | placed_now) & (new_stage > self.best_stage)
        r_stage = torch.where(reached_now, cfg.reach_reward, cfg.place_reward)
        stage_reward = torch.where(pay, r_stage * decay, 0.0)
        changed = new_stage != self.stage
        self.stage = torch.where(success, 2 * self.n_placed, new_stage)
        self.best_stage = torch.maximum(self.best_stage, self.stage)
        self.stage_steps.masked_fill_(changed, 0)
        self.reached |= reached_now
        # Approach in a reach stage, progress in a place stage, none at a change: [W, 2] at once.
        odd = (self.stage % 2 == 1).unsqueeze(1)
        shaping = torch.where((odd == self.consts.odd_col) & ~changed.unsqueeze(1), self._prev_dist - dist, 0.0)
        self._prev_dist = dist
        terms = {
            "stage": stage_reward[:, None],
            "success": success[:, None].float(),
            "approach": shaping[:, :1],
            "progress": shaping[:, 1:],
            "time": self.consts.minus_ones,
            "anchor": -(s["anchor_pos"] - self._anchor_before).norm(dim=-1, keepdim=True),
            "knock": -(self._placed_before > placed).sum(1, keepdim=True).float(),
        }
        info = {
            "success": success.clone(),
            "stage": self.stage.clone(),
            "reach": self.reached.clone(),
            "path_length": self.path_length.clone(),
            "placed": placed.sum(1),
        }
        if self.start_replay is not None:
            info["replayed"] = self.start_replay.replayed.clone()  # this episode began from a failed start
        return terms, success.clone(), info

    # -- observations -------------------------------------------------------------------------------
    def corners(self, pos: torch.Tensor, yaw: torch.Tensor, half: float) -> torch.Tensor:
        """World corners ``[..., 4, 2]`` of squares of half-side ``half`` at ``pos`` ``[..., 2]``."""
        unit = self._unit_square * half
        c, s = torch.cos(yaw)[..., None], torch.sin(yaw)[..., None]
        return pos[..., None, :] + rot(unit, c, s)

    def _keypoint_groups(self, s: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """World keypoints of the active box, anchor, obstacles and reference ``[W, 3 + slots, 4, 2]``,
        and the box index of the active box ``[W]``."""
        active = s["active"]
        # The corners of every box, the anchor and the active box's target square at once (``corners``'
        # floats, each square with its own half-side), then each slot's square picked by one gather.
        ayaw = s["anchor_yaw"][:, None]
        pos = torch.cat((s["box_pos"], s["anchor_pos"][:, None], row(s["targets"], s["kc"])[:, None]), 1)
        yaw = torch.cat((s["box_yaw"], ayaw, ayaw), 1)  # [W, B + 2]
        c, si = torch.cos(yaw)[..., None, None], torch.sin(yaw)[..., None, None]
        squares = pos[:, :, None] + (self.consts.square * c + self.consts.square_flip * si)  # [W, B + 2, 4, 2]
        rows = self.consts.slot_rows[active]  # [W, 3 + slots]: active box, anchor, obstacles, reference
        kp = squares.gather(1, rows[..., None, None].expand(-1, -1, KP, 2))
        return kp, active

    def _slot_objects(self, active: torch.Tensor, kc: torch.Tensor) -> torch.Tensor:
        """``[W, G]`` object of each keypoint slot (memory index): box ``i`` -> ``i``, the anchor -> ``B``,
        the target of placement ``j`` -> ``B + 1 + j``."""
        B = self.cfg.n_boxes
        return torch.cat((self.consts.slot_rows[active, :-1], (B + 1 + kc)[:, None]), 1)

    def to_robot(self, s: dict[str, torch.Tensor], pts: torch.Tensor) -> torch.Tensor:
        """World points ``[W, ..., 2]`` into the robot frame."""
        shape = [self.num_envs] + [1] * (pts.dim() - 2)
        c, si = (s["cos"], s["sin"]) if "cos" in s else (torch.cos(s["yaw"]), torch.sin(s["yaw"]))
        d = pts - s["pos"].view(*shape[:1], *shape[1:], 2)
        return rot(d, c.view(shape), -si.view(shape))

    def project(self, pts_robot: torch.Tensor, height: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Robot-frame points at ``height`` -> (image u, v in [-1, 1] at the edges, depth m) in the head camera."""
        return self.view.project(pts_robot, height)

    def _observe(self) -> Obs:
        s = self.task_state()
        kp, active = self._keypoint_groups(s)
        kp_r = self.to_robot(s, kp)  # [W, G, 4, 2]
        full = torch.cat((kp_r, self._ones_kp), -1).flatten(1)
        if self.cfg.observability == "global":
            masked = full
        else:  # memory_seconds 0: what is in view now, the same mechanism with no memory span
            obj = self._slot_objects(s["active"], s["kc"])
            mem, flag = self.memory.remember(obj, kp, self.view.visibility(kp_r), self.episode_length)
            flag = flag.unsqueeze(-1)
            masked = torch.cat((self.to_robot(s, mem) * flag, flag), -1).flatten(1)
        placed_frac = s["placed"].float().mean(1, keepdim=True)
        robot = torch.cat((s["fwd"][:, None], s["wz"][:, None], self.prev_action[:, 0], placed_frac), -1)
        time_left = 1 - self.episode_length.float()[:, None] / self.max_episode_steps
        half_track = scene.ROBOT_HALF[1]
        wheels = torch.stack((s["fwd"] - s["wz"] * half_track, s["fwd"] + s["wz"] * half_track), -1)
        wheels = wheel_readings(wheels, getattr(self, "wheel_scale", None), self.cfg.wheel_noise, self.generator)
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
        if self._render:
            obs.update(self._observe_cameras())
        return obs

    def _observe_cameras(self) -> Obs:
        return self._cameras(self.task_state()["active"]) if self.cfg.cameras else {}

    def _room_keypoints(self, s: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The room's corners ``[W, 12]`` as the actor is shown them (x, y zeroed where not shown,
        then the flags), and ``[W, 12]`` all shown (the critic's). A corner does not move, so the
        memory is only when it was last seen."""
        room = self.to_robot(s, self._room.expand(self.num_envs, -1, -1))  # [W, 4, 2]
        ones = torch.ones_like(room[..., :1])
        every = torch.cat((room, ones), -1).flatten(1)
        if self.cfg.observability == "global":
            return every, every
        flag = self.memory.remember_room(self.view.in_view(room), self.episode_length)[..., None]
        return torch.cat((room * flag, flag), -1).flatten(1), every

    def appended_dims(self, group: str, source_config: dict[str, Any]) -> int:
        """How many inputs this env's ``group`` appends at its end to the same env under
        ``source_config`` (an ``EgoPushConfig`` as a dict, e.g. a checkpoint's ``env_config``; the rest
        is laid out alike): what a warm start from it must add (``room_keypoints``)."""
        if group not in ("privileged", "critic"):
            return 0
        mine, theirs = self.cfg.room_keypoints, bool(source_config.get("room_keypoints", False))
        return 3 * KP * (int(mine) - int(theirs))

    def _cameras(self, active: torch.Tensor) -> Obs:
        mods = camera_modalities(self.cfg.cameras)
        img = self.render_cameras(["robot_cam"], self.cfg.camera_resolution, mods)
        if self.cfg.depth_layers == "identity":
            table, n = self.identity, self.observation_spaces["depth_layers"].shape[0]
        else:
            table, n = role_table(active, self.cfg.n_boxes, self.goal_task), 3
        return camera_groups(img, self.cfg.cameras, self._geom_object, table, n)
