"""The map memory of depth-layer students (``distill.egopush.odometry_map``): a box the robot turns away from
stays in the map where it is, seen free ground is cleared while ground hidden behind a box is not,
an episode start forgets, and a ``memory=map`` student trains on stored maps and reloads."""

import math
from pathlib import Path

import pytest
import torch

import envs
from agents.policies import make_policy
from distill.dagger import DaggerConfig, Distiller
from distill.egopush.odometry_map import EgoMap, MapState
from distill.students import Student, StudentConfig
from distill.teacher_env import make_distill_env

ROOT = Path(__file__).resolve().parents[3]
GOAL_TEACHER = ROOT / "checkpoints" / "egopush-goal-teacher"


def _geometry() -> dict:
    env = envs.make("egopush-line", num_envs=1)  # no camera rendered: only its pose is read
    try:
        return env.camera_geometry()
    finally:
        env.close()


def _value_at(em: EgoMap, view: torch.Tensor, xy: torch.Tensor, radius: float = 0.15) -> torch.Tensor:
    """Largest map value (over roles) within ``radius`` of robot-frame points ``xy`` ``[N, P, 2]``."""
    d = (em.window_xy[None, :, None] - xy[:, None]).norm(dim=-1)  # [N, cells^2, P]
    v = view.amax(1).flatten(1)[..., None]  # [N, cells^2, 1]
    return (v * (d < radius)).amax(1)


def test_a_box_the_robot_turned_away_from_stays_where_it_is() -> None:
    W = 24
    env = envs.make("egopush-line", num_envs=W, cameras=("depth_layers",))
    em = EgoMap(env.camera_geometry(), env.cfg.camera_resolution[::-1])
    obs = env.reset(seed=2)
    state = em.init_state(W)
    first = torch.ones(W, dtype=torch.bool)
    seen = torch.zeros(W, env.cfg.n_boxes, dtype=torch.bool)
    turn = torch.tensor([0.0, 1.0]).expand(W, 1, 2)
    for t in range(32):  # turning in place at 2 rad/s: about 3.2 rad, so what was ahead is behind
        state = em.step(obs["depth_layers"][:, 0], obs["proprio"][:, 0], state, first)
        s = env.task_state()
        box_r = env.to_robot(s, s["box_pos"])  # [W, B, 2] true positions in the robot frame
        u, v, depth = env.project(box_r, 0.1)
        in_view = (u.abs() < 0.8) & (v.abs() < 0.8) & (depth > 0.3) & (depth < 2.0)
        if t == 0:
            seen = in_view
        first = torch.zeros(W, dtype=torch.bool)
        obs, *_ = env.step(turn)
    state = em.step(obs["depth_layers"][:, 0], obs["proprio"][:, 0], state, first)
    s = env.task_state()
    box_r = env.to_robot(s, s["box_pos"])
    u, _, _ = env.project(box_r, 0.1)
    env.close()
    gone = seen & (u.abs() > 1.2)  # seen at the start, out of view now
    assert gone.sum() >= 3, "the scene should have boxes that were seen and then left the view"
    value = _value_at(em, state.view, box_r)
    assert (value[gone] > 0.5).float().mean() >= 0.8, value[gone]
    # Nowhere else: marks more than 0.3 m from every box are a small share of the map.
    d = (em.window_xy[None, :, None] - box_r[:, None]).norm(dim=-1).amin(-1)  # [W, cells^2]
    mass = state.view.sum(1).flatten(1)
    assert (mass * (d > 0.3)).sum() < 0.05 * mass.sum()


def test_seen_free_ground_is_cleared_and_ground_behind_a_box_is_kept() -> None:
    em = EgoMap(_geometry(), (32, 32), roles=3, cells=40, cell=0.1, tau=10.0)
    ahead, behind = torch.tensor([[1.0, 0.05]]), torch.tensor([[-1.0, 0.05]])

    def marked() -> MapState:
        state = em.init_state(2)
        for xy in (ahead, behind):  # pose 0: the start frame is the robot frame
            i, _ = em.cell_index(xy)
            state.grid.view(2, 3, -1)[:, 2, i] = 1.0
        return state

    still = torch.zeros(2, 4)
    depth = torch.zeros(2, 3, 32, 32)
    depth[1, 1] = 0.3  # row 1: a box (anchor role) fills the view 0.3 m ahead, hiding the ground
    state = em.step(depth, still, marked(), torch.zeros(2, dtype=torch.bool))
    at_ahead = _value_at(em, state.view, ahead.expand(2, 1, 2), 0.06)[:, 0]
    at_behind = _value_at(em, state.view, behind.expand(2, 1, 2), 0.06)[:, 0]
    decay = math.exp(-em.dt / em.tau)
    assert at_ahead[0] == 0  # nothing in view: the mark ahead is cleared
    assert at_ahead[1] == pytest.approx(decay, abs=0.05)  # hidden behind the box: kept, faded
    assert at_behind.tolist() == pytest.approx([decay, decay], abs=0.05)  # out of view: kept
    assert state.view[1, 1].sum() > 0 and state.view[0, 1].sum() == 0  # the box is marked, as anchor
    # An episode start forgets everything but what is seen now.
    state = em.step(depth, still, marked(), torch.ones(2, dtype=torch.bool))
    assert state.view[:, 2].sum() == 0 and state.view[1, 1].sum() > 0


def test_odometry_follows_the_wheels() -> None:
    em = EgoMap(_geometry(), (8, 8))
    state = em.init_state(1)
    ht = em.half_track
    for t in range(20):  # 0.5 m/s straight for 1 s, then turning left in place at 1 rad/s for 1 s
        fwd, turn = (0.5, 0.0) if t < 10 else (0.0, 1.0)
        wheels = torch.tensor([[fwd - turn * ht, fwd + turn * ht, 0.0, 0.0]])
        state = em.step(torch.zeros(1, 3, 8, 8), wheels, state, torch.tensor([t == 0]))
    # The first step only starts the episode's frame; 9 steps straight, the switch step averages
    # the two motions (trapezoidal rule), then 9 steps turning.
    x, y, yaw = state.pose[0].tolist()
    assert x == pytest.approx(0.5 * 0.05 * 9.5, abs=1e-3)
    assert y == pytest.approx(0.0, abs=0.01)
    assert yaw == pytest.approx(1.0 * 0.05 * 9.5, abs=1e-3)


def test_map_student_trains_on_stored_maps_and_reloads(tmp_path: Path) -> None:
    W, steps = 4, 8
    env = make_distill_env(GOAL_TEACHER, num_envs=W, camera_resolution=(32, 32))
    cfg = DaggerConfig(steps_per_iter=steps, buffer_steps=steps, updates_per_iter=2)
    d = Distiller(env, GOAL_TEACHER, StudentConfig(memory="map", map_cells=24), cfg, W * steps * 2, 0, tmp_path)
    views, step = [], d.student.step

    def recording_step(img, proprio, state, first):
        a, state = step(img, proprio, state, first)
        views.append(state.view.clone())
        return a, state

    d.student.step = recording_step
    d.collect()
    assert torch.allclose(d.buffer.data["egomap"].float(), torch.stack(views), atol=1e-3)  # stored as float16
    assert d.buffer.data["egomap"].float().sum() > 0  # the goal region and box were mapped
    # Trained on the stored maps: the sequence path on them gives the step path's actions.
    b = d.buffer.data
    with torch.no_grad():
        seq, _ = d.student(
            b["img"][None, :, 0], b["proprio"][None, :, 0], b["first"][None, :, 0], None, b["egomap"][None, :, 0]
        )
    d.student.step = step
    d.learn(progress=False)
    env.close()
    assert seq.shape == (1, steps, 2)
    # Reloaded with its geometry, as eval.py loads it; without a map it refuses.
    student, meta = Student.load(tmp_path / "checkpoint")
    assert meta["egomap_geometry"] == d.student.geometry
    eval_env = make_distill_env(GOAL_TEACHER, num_envs=2, camera_resolution=(32, 32))
    policy = make_policy(tmp_path / "checkpoint", eval_env)
    assert policy(eval_env.reset(seed=0)).shape == (2, 1, 2)
    eval_env.close()
    with pytest.raises(ValueError, match="map window"):
        student(b["img"][None, :, 0], b["proprio"][None, :, 0], b["first"][None, :, 0])
    with pytest.raises(ValueError, match="depth_layers"):
        Student("camera", (3, 32, 32), 4, 2, StudentConfig(memory="map"), _geometry())


def test_the_centred_channel_marks_the_anchor_only_while_it_is_near_the_image_centre() -> None:
    """``gate_role``: the anchor (role 1) seen at the image centre goes into the last channel as
    well as its own; seen at the image edge, into its own channel only."""
    H = W = 16
    em = EgoMap(_geometry(), (H, W), gate_role=1, gate=0.3)
    assert em.channels == 4
    depth = torch.zeros(2, 3, H, W)
    depth[0, 1, 4:12, 6:10] = 1.5  # world 0: the anchor straight ahead
    depth[1, 1, 4:12, 0:4] = 1.5  # world 1: the anchor at the left edge (columns 0-3: u < -0.5)
    state = em.step(depth, torch.zeros(2, 4), em.init_state(2), torch.ones(2, dtype=torch.bool))
    marks = state.grid.flatten(2).amax(2)  # [worlds, channels]
    assert marks[:, 1].tolist() == [1.0, 1.0]  # both seen in the anchor's own channel
    assert marks[:, 3].tolist() == [1.0, 0.0]  # only the centred one in the centred channel
    assert marks[:, [0, 2]].sum() == 0
    # Hidden behind a nearer box, the centred mark is neither renewed nor cleared: it fades.
    wall = torch.zeros_like(depth)
    wall[:, 2] = 0.5
    state = em.step(wall, torch.zeros(2, 4), state, torch.zeros(2, dtype=torch.bool))
    assert state.grid[0, 3].amax().item() == pytest.approx(em.decay, abs=1e-6)
    assert state.grid[1, 3].amax().item() == 0.0
    with pytest.raises(ValueError, match="gate_role"):
        EgoMap(_geometry(), (H, W), gate_role=3)


def test_map_moments_put_a_seen_box_where_it_is() -> None:
    """``map_moments``: the mean of a role's pixels lifted to the floor plan lies on the box the
    camera sees (within its half-size plus a margin: the camera sees the near faces), and, where the
    box lies on the map's window, the window's moments of that role agree with it."""
    W = 8
    env = envs.make("egopush-line", num_envs=W, cameras=("depth_layers",))
    obs = env.reset(seed=3)
    img = obs["depth_layers"][:, 0]
    s = env.task_state()
    active_r = env.to_robot(s, s["box_pos"])[torch.arange(W), s["active"]]  # [W, 2] true centre
    student = Student(
        "depth_layers", tuple(img.shape[1:]), 4, 2, StudentConfig(memory="map", map_moments=True), env.camera_geometry()
    )
    state = student.egomap.step(
        img, obs["proprio"][:, 0], student.egomap.init_state(W), torch.ones(W, dtype=torch.bool)
    )
    env.close()
    m = student.memory.moments(img, state.view).view(W, -1, 6)  # rows: 3 image roles, 3 map channels, 3 fresh
    seen = m[:, 0, 0] > 0.002  # the active box covers some of the image
    assert seen.sum() >= 2
    err_img = (m[seen, 0, 1:3] - active_r[seen]).norm(dim=-1)
    inside = seen & (active_r.abs() < student.egomap.window_xy.abs().max() - 0.2).all(-1)  # on the map's window
    assert inside.sum() >= 2
    err_map = (m[inside, 3, 1:3] - active_r[inside]).norm(dim=-1)
    assert err_img.max() < 0.2 and err_map.max() < 0.2
    assert (m[~seen, 0, :3] == 0).all()  # an unseen role reads zero
    with pytest.raises(ValueError, match="map_moments"):
        Student("depth_layers", (3, 16, 16), 4, 2, StudentConfig(map_moments=True))
    with pytest.raises(ValueError, match="map_gate"):
        Student("depth_layers", (3, 16, 16), 4, 2, StudentConfig(map_gate=0.3))


def test_jittered_corner_modes_reorder_the_box_corners_only() -> None:
    """``egopush_jitter.py --corners``: ``shift`` and ``canonical`` reorder the active box's and the
    obstacles' corners (``canonical``: the first one at 0 to 90 degrees about the centre), ``centre``
    puts them at their mean, ``current`` where they are now, and the anchor and reference groups are
    never touched."""
    from distill.egopush import probes as jitter

    G = 4  # active, anchor, one obstacle, reference
    yaw = torch.tensor([0.3, 2.0, -2.5, -0.7])  # one per group
    unit = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]]) * 0.1
    c, s = torch.cos(yaw)[:, None], torch.sin(yaw)[:, None]
    turned = torch.stack((c * unit[:, 0] - s * unit[:, 1], s * unit[:, 0] + c * unit[:, 1]), -1)  # [G, 4, 2]
    corners = turned + torch.tensor([[1.0, 0.5], [0.4, -0.3], [-0.2, 0.8], [0.9, 0.9]])[:, None]
    flags = torch.ones(G, 4, 1)
    flags[0, 3] = 0  # the active box's last corner is not shown
    priv = torch.cat((corners * flags, flags), -1).flatten()
    moved = corners + 0.05  # where the boxes are "now"
    obs = {
        "privileged": torch.cat((priv, torch.zeros(5)))[None, None],
        "critic": torch.cat((torch.cat((moved, torch.ones(G, 4, 1)), -1).flatten(), torch.zeros(6)))[None, None],
    }

    def seen(corners_mode: str) -> torch.Tensor:
        out = jitter.Jittered(lambda p: p, G, 0.0, 0, corners_mode)(obs)
        return out[0, 0, : 12 * G].view(G, 4, 3)

    before = obs["privileged"][0, 0, : 12 * G].view(G, 4, 3)
    for mode in jitter.CORNERS:
        after = seen(mode)
        assert torch.equal(after[[1, 3]], before[[1, 3]]), mode  # anchor, reference untouched
    assert torch.equal(seen("true"), before)
    canon = seen("canonical")[2]  # the obstacle (all corners shown): same corners, canonical order
    assert sorted(map(tuple, canon[:, :2].tolist())) == sorted(map(tuple, before[2, :, :2].tolist()))
    d = canon[0, :2] - canon[:, :2].mean(0)
    assert 0 <= math.atan2(d[1], d[0]) < math.pi / 2
    centre = seen("centre")
    assert torch.allclose(centre[2, :, :2], before[2, :, :2].mean(0).expand(4, 2))
    assert torch.allclose(centre[0, :3, :2], before[0, :3, :2].mean(0).expand(3, 2))  # mean of the shown
    assert centre[0, 3].abs().sum() == 0  # an unshown corner stays unshown, at zero
    current = seen("current")
    assert torch.allclose(current[0, :3, :2], moved[0, :3]) and current[0, 3].abs().sum() == 0
