"""Geometric keypoints (``distill.egopush.geometry``): from the role-layered depth image alone a box in view
is placed within centimetres and the anchor's yaw is read from its marker; its corners keep their
names as the robot turns (``labels="world"``); a swap of roles (a box placed) is told from where the
boxes are; and a ``memory=geometric`` student starts as its teacher acting on geometry's estimate,
trains on stored estimates and reloads."""

import json
import math
from pathlib import Path

import pytest
import torch

import envs
from agents.policies import make_policy
from distill.dagger import DaggerConfig, Distiller
from distill.egopush.geometry import LABELS, GeoKeypoints
from distill.students import Student, StudentConfig
from distill.teacher_env import load_teacher, make_distill_env
from envs.egopush import scene

ROOT = Path(__file__).resolve().parents[3]
TEACHER = ROOT / "checkpoints" / "egopush-line-teacher-fov_gated"


def _env(W: int, **kw):
    _, meta = load_teacher(TEACHER)
    cfg = {**meta["env_config"], "cameras": ("depth_layers",), "anchor_marker": True, **kw}
    return envs.make("egopush-line", num_envs=W, **cfg)


def _geo(env, **kw) -> GeoKeypoints:
    W_img, H_img = env.cfg.camera_resolution
    return GeoKeypoints(env.keypoint_geometry(), (H_img, W_img), **{"centres": StudentConfig().geo_centres, **kw})


def _first_frame(W: int = 96, seed: int = 3) -> tuple[torch.Tensor, dict, torch.Tensor, torch.Tensor, dict, tuple]:
    """A ``fov`` world's first frame: role layers ``[W, 3, H*W]``, the env's state, the true robot-frame
    centres of the active box and the anchor ``[W, 2, 2]``, whether all their top corners are in the
    image and it is not hidden behind another box ``[W, 2]``, the keypoint geometry and the image's
    height and width."""
    env = envs.make("egopush-line", num_envs=W, cameras=("depth_layers",), anchor_marker=True, observability="fov")
    try:
        obs = env.reset(seed=seed)
        s = env.task_state()
        rows = torch.arange(W)[:, None]
        idx = torch.stack((s["active"], torch.zeros_like(s["active"])), 1)  # active box, anchor (box 0)
        true = env.to_robot(s, s["box_pos"])[rows, idx]
        corners = env.to_robot(s, env.corners(s["box_pos"], s["box_yaw"], scene.BOX_HALF))[rows, idx]
        u, v, d = env.project(corners, 2 * scene.BOX_HALF)
        whole = ((u.abs() < 0.95) & (v.abs() < 0.95) & (d > 0.05)).all(-1)
        W_img, H_img = env.cfg.camera_resolution
        depth = obs["depth_layers"][:, 0].float().flatten(2)
        whole &= (depth[:, :2] > 0).any(-1)  # in the frustum, and some of it not behind another box
        return depth, s, true, whole, env.keypoint_geometry(), (H_img, W_img)
    finally:
        env.close()


def test_geometry_alone_places_a_seen_box_and_reads_the_anchor_yaw_from_its_marker() -> None:
    """A box wholly in view is seen (nine in ten: one partly hidden behind another box may show too
    little) and placed within 3 cm of its centre, nine in ten within 1.5 cm (the plain mean of its
    pixels is off by most of a half box: the camera sees its near faces); the anchor's yaw is read
    from its marker, within 0.1 rad, nine in ten within 0.05."""
    depth, s, true, whole, geometry, hw = _first_frame()
    g = GeoKeypoints(geometry, hw)
    centre, seen, _, yaw, marker = g.boxes(depth)
    assert whole.sum() >= 10 and seen[:, :2][whole].float().mean() >= 0.9
    err = (centre[:, :2] - true).norm(dim=-1)[whole & seen[:, :2]]
    assert err.max() < 0.03 and err.quantile(0.9) < 0.015, err
    on = (depth[:, :2] > 0).float()
    pts = g.tables["cam"] + depth[:, :2, :, None] * g.tables["ray"]
    plain = (on[..., None] * pts[..., :2]).sum(2) / on.sum(2, keepdim=True).clamp(min=1)
    assert ((plain - true).norm(dim=-1)[whole]).min() > 0.05  # what the shift along the sight line is for
    rel = torch.remainder(yaw - (s["box_yaw"][:, 0] - s["yaw"]) + math.pi, 2 * math.pi) - math.pi
    assert marker.sum() >= 10 and rel[marker].abs().max() < 0.1 and rel[marker].abs().quantile(0.9) < 0.05, rel[marker]


def test_face_planes_place_a_box_closer_than_the_pixel_mean_wholly_in_view_or_cut_by_the_edge() -> None:
    """A side face's pixels fix the centre along its normal however much of the box is hidden, so
    the face-plane centre is within 3 cm for nine in ten boxes wholly in view, with a median error at most
    half the pixel mean's (moved along the sight line); for a box cut by the image's edge (where a
    box shows one face only, the two agree along that face) its median error is still the lower."""
    depth, _, true, whole, geometry, hw = _first_frame()
    err = {}
    for planes in (True, False):
        centre, seen, *_ = GeoKeypoints(geometry, hw, centres="planes" if planes else "pixels").boxes(depth)
        err[planes] = (centre[:, :2] - true).norm(dim=-1)
    cut = seen[:, :2] & ~whole
    assert whole.sum() >= 10 and cut.sum() >= 10
    assert err[True][whole].quantile(0.9) < 0.03, err[True][whole]
    assert err[True][whole].median() < 0.5 * err[False][whole].median(), (err[True][whole], err[False][whole])
    assert err[True][cut].median() < err[False][cut].median(), (err[True][cut], err[False][cut])


def test_the_silhouette_of_a_box_cut_by_the_edge_places_it_along_its_one_face_seen() -> None:
    """A box cut by the image's edge often shows one side face: its plane fixes the centre along its
    normal only, and along the face the face planes fall back on the pixel mean, centimetres off.
    The face's end that the image does show (an image row's outermost pixel, not at the edge and not
    beside a nearer box) is a vertical edge of the box, so with it (``centres="corners"``) every cut
    box of 10 pixels or more is placed within 4 cm, nine in ten within 3.5 cm, where the face planes
    alone miss some by more than 5 cm; nine in ten boxes wholly in view stay within 1.5 cm. (A sliver
    of fewer pixels shows no face, and with ``corners`` it is not placed at all.)"""
    depth, _, true, whole, geometry, hw = _first_frame(seed=4)
    err = {}
    for centres in ("planes", "corners"):  # boxes that ``corners`` places (not a faceless sliver)
        centre, seen, *_ = GeoKeypoints(geometry, hw, centres=centres).boxes(depth)
        err[centres] = (centre[:, :2] - true).norm(dim=-1)
    cut = seen[:, :2] & ~whole & ((depth[:, :2] > 0).sum(-1) >= 10)
    assert cut.sum() >= 10
    corners, planes = err["corners"][cut], err["planes"][cut]
    assert corners.max() < 0.04 and corners.quantile(0.9) < 0.035 and planes.max() > 0.05, (corners, planes)
    assert err["corners"][whole].quantile(0.9) < 0.015, err["corners"][whole]
    with pytest.raises(ValueError, match="centres must be one of"):
        GeoKeypoints(geometry, hw, centres="edges")


def test_a_box_that_shows_only_its_top_face_is_placed_by_that_face_s_edges() -> None:
    """The box being pushed fills the bottom of the image: its near faces are below it, and the
    camera sees its top face alone. With no side face, ``corners`` falls back on the pixel mean
    (moved along the sight line), several centimetres off; the top face's far edge (each column's
    topmost pixel) and its lateral edges (each row's outermost) place it within 3 cm on average
    (``centres="top"``), less than half the error. Boxes that show a side face are placed as by
    ``corners``."""
    W, steps = 8, 200
    teacher, _ = load_teacher(TEACHER)
    env = _env(W)
    W_img, H_img = env.cfg.camera_resolution
    geos = {c: GeoKeypoints(env.keypoint_geometry(), (H_img, W_img), centres=c) for c in ("top", "corners")}
    obs = env.reset(seed=1000)
    rows = torch.arange(W)[:, None]
    err = {c: [] for c in geos}
    same = []
    try:
        for _ in range(steps):
            s = env.task_state()
            ids = torch.stack((s["active"], torch.zeros_like(s["active"]), env.obstacle_order[s["active"]][:, 0]), 1)
            true = env.to_robot(s, s["box_pos"])[rows, ids]
            depth = obs["depth_layers"][:, 0].float().flatten(2)
            out = {c: g.boxes(depth) for c, g in geos.items()}
            assert torch.equal(out["top"][1], out["corners"][1])  # the same boxes are seen
            grid = geos["top"].tables["cam"] + depth[..., None] * geos["top"].tables["ray"]
            side = ((depth > 0) & (grid[..., 2] > 0.01) & (grid[..., 2] < 2 * scene.BOX_HALF - 0.01)).sum(-1)
            only_top = out["top"][1] & (side == 0)
            for c in geos:
                err[c] += (out[c][0] - true).norm(dim=-1)[only_top].tolist()
            # A side face shows as pixels side by side in an image row (the reader's "3 row pairs").
            on_side = (depth > 0) & (grid[..., 2] > 0.01) & (grid[..., 2] < 2 * scene.BOX_HALF - 0.01)
            on_side = on_side.view(*on_side.shape[:2], H_img, W_img)
            pairs = (on_side[..., 1:] & on_side[..., :-1]).flatten(2).sum(-1)
            faced = out["top"][1] & (side >= 20) & (pairs >= 3)
            same.append(torch.allclose(out["top"][0][faced], out["corners"][0][faced]))
            with torch.no_grad():
                obs, *_ = env.step(teacher(obs["privileged"].float()))
    finally:
        env.close()
    mean = {c: sum(v) / max(len(v), 1) for c, v in err.items()}
    assert len(err["top"]) >= 30, len(err["top"])
    assert mean["top"] < 0.03 and mean["top"] < 0.5 * mean["corners"], mean
    assert all(same)


@pytest.mark.slow  # about 80 s on 2 cores
def test_while_the_teacher_drives_the_estimate_follows_the_placement_index_and_the_anchor_yaw() -> None:
    """The teacher drives; the env's placement index changes as boxes are placed (and knocked out).
    The estimate, told only by where the boxes are seen, follows it: right at nearly every step, and
    far more often than an estimate that never swaps. The anchor's single marker readings take the
    wrong quarter turn rarely (from the face-plane centre; 0.087 of readings from the pixel mean),
    and the yaw it holds (the vote of those readings, moved by odometry) is within 0.5 rad of the
    truth at most steps: it misses where a push turned the anchor out of view, which in some worlds
    lasts long (wrong at 0.03 to 0.23 of the steps in three sets of 16 worlds, 0.12 over these 48)."""
    W, steps = 48, 260
    teacher, _ = load_teacher(TEACHER)
    env = _env(W)
    geo = _geo(env)
    state = geo.init_state(W)
    obs = env.reset(seed=5)
    right, never, changes = 0.0, 0.0, 0
    held, read = [], []
    prev = torch.zeros(W, dtype=torch.long)

    def wrong(yaw: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
        return (torch.remainder(yaw - true + math.pi, 2 * math.pi) - math.pi).abs() > 0.5

    try:
        for _ in range(steps):
            first = env.episode_length.cpu() == 0
            s = env.task_state()
            kc, true = s["kc"].cpu(), (s["anchor_yaw"] - s["yaw"]).cpu()
            changes += int(((kc != prev) & ~first).sum())
            prev = kc
            depth = obs["depth_layers"][:, 0].float()
            *_, reading, sure = geo.boxes(depth.flatten(2))
            state = geo.step(depth, obs["proprio"][:, 0].float(), state, first)
            right += float((state.kc == kc).float().mean()) / steps
            never += float((kc == 0).float().mean()) / steps
            held += wrong(state.ayaw - state.pose[:, 2], true)[state.ayaw_seen].tolist()
            read += wrong(reading, true)[sure].tolist()
            with torch.no_grad():
                obs, *_ = env.step(teacher(obs["privileged"].float()))
    finally:
        env.close()
    assert changes >= 4, changes
    assert right > 0.95 and right > never + 0.05, (right, never)
    held_wrong, read_wrong = sum(held) / len(held), sum(read) / len(read)
    assert len(read) > 300 and read_wrong < 0.02 and held_wrong < 0.15, (held_wrong, read_wrong)


def test_world_labels_keep_each_corner_s_name_as_the_robot_turns() -> None:
    """A cube's yaw is known up to a quarter turn. Named in the robot's frame (``labels="robot"``),
    its corners change names whenever the robot turns it through 45 degrees of view, so a corner's
    stored place jumps by a side (0.2 m) from one step to the next; named by the quarter turn
    nearest the yaw last seen in the start frame (``"world"``), each keeps its place. The robot
    turns in place; each step compares where the active box's and the obstacle's corners seen at
    both steps are stored."""
    W, steps = 32, 20
    counts = {}
    for labels in ("robot", "world"):
        env = _env(W)
        if labels == "robot":
            with pytest.raises(ValueError, match="labels must be one of"):
                _geo(env, labels="camera")
        geo = _geo(env, labels=labels)
        state = geo.init_state(W)
        obs = env.reset(seed=3)
        turn = torch.tensor([0.0, 1.0]).expand(W, 1, 2)
        jumps = []
        try:
            for _ in range(steps):
                first = env.episode_length.cpu() == 0
                kp, seen = state.kp[:, 0:3:2].clone(), state.seen[:, 0:3:2].clone()  # active box, obstacle
                state = geo.step(obs["depth_layers"][:, 0].float(), obs["proprio"][:, 0].float(), state, first)
                now = state.step[:, None, None]
                both = (state.seen[:, 0:3:2] == now) & (seen == now - 1) & ~first[:, None, None]
                jumps += (state.kp[:, 0:3:2] - kp).norm(dim=-1)[both].tolist()
                obs, *_ = env.step(turn)
        finally:
            env.close()
        jumps = torch.tensor(jumps)
        counts[labels] = (len(jumps), int((jumps > 0.15).sum()))
    assert counts["robot"][0] > 300 and counts["world"][0] > 300, counts
    assert counts["robot"][1] >= 10 and counts["world"][1] == 0, counts


def test_a_true_pose_given_moves_the_memories_in_place_of_wheel_odometry() -> None:
    """``GeoKeypoints.step(..., pose=...)`` (``egopush_geometric.py --odometry true``): a box seen at
    the first step and out of view at the next stays where it was in the start frame, so in the
    robot's frame it moves by the pose given (0.2 m forward: 0.2 m nearer), not by the wheels
    (still: it stays put)."""
    depth, _, _, _, geometry, hw = _first_frame()
    W = depth.shape[0]
    geo = GeoKeypoints({**geometry, "memory_seconds": 60.0}, hw, centres=StudentConfig().geo_centres)
    still, first = torch.zeros(W, 4), torch.ones(W, dtype=torch.bool)
    state = geo.step(depth.view(W, 3, *hw), still, geo.init_state(W), first)
    before = state.out[:, :48].view(W, 4, 4, 3)[:, 0]  # the active box's corners (x, y, flag)
    seen = before[..., 2].amin(-1) > 0
    assert seen.sum() >= 5
    blank = torch.zeros(W, 3, *hw)
    forward = torch.tensor([0.2, 0.0, 0.0]).expand(W, 3)
    for pose, shift in ((None, 0.0), (forward, -0.2)):
        after = geo.step(blank, still, state, ~first, pose=pose).out[:, :48].view(W, 4, 4, 3)[:, 0]
        assert (after[seen, :, 2] > 0).all()  # still shown, from memory
        assert torch.allclose(after[seen, :, 0], before[seen, :, 0] + shift, atol=1e-5)
        assert torch.allclose(after[seen, :, 1], before[seen, :, 1], atol=1e-5)


def test_for_a_global_teacher_every_corner_is_shown_and_a_box_out_of_view_stays_where_it_was_seen() -> None:
    """A ``global`` teacher sees every keypoint at every step. Its estimate shows every corner at
    every step; a box seen earlier and out of view now stays where it was seen (moved by odometry),
    its median centre error under 0.15 m, where a box never seen is over 0.5 m off; and the reference
    follows the remembered anchor once its yaw is read (median error under 0.1 m)."""
    W, steps = 16, 120
    teacher, meta = load_teacher(ROOT / "checkpoints" / "egopush-line-teacher-global")
    env = envs.make(
        "egopush-line", num_envs=W, **{**meta["env_config"], "cameras": ("depth_layers",), "anchor_marker": True}
    )
    geo = _geo(env)
    state = geo.init_state(W)
    obs = env.reset(seed=5)
    remembered, never, reference, shown = [], [], [], []
    try:
        for _ in range(steps):
            first = env.episode_length.cpu() == 0
            depth = obs["depth_layers"][:, 0].float()
            _, in_view, *_ = geo.boxes(depth.flatten(2))
            state = geo.step(depth, obs["proprio"][:, 0].float(), state, first)
            truth = obs["privileged"][:, 0, :48].view(W, 4, 4, 3)
            est = state.out[:, :48].view(W, 4, 4, 3)
            shown.append(float(est[..., 2].min()))
            err = (truth[..., :2].mean(2) - est[..., :2].mean(2)).norm(dim=-1)  # [W, 4] centres
            ever = (state.seen[:, :3] > geo.SENTINEL).any(-1)
            remembered += err[:, :3][ever & ~in_view].tolist()
            never += err[:, :3][~ever].tolist()
            reference += err[:, 3][state.ayaw_seen].tolist()
            with torch.no_grad():
                obs, *_ = env.step(teacher(obs["privileged"].float()))
    finally:
        env.close()
    assert min(shown) == 1.0
    assert len(remembered) > 500 and len(never) > 100 and len(reference) > 500
    med = {k: torch.tensor(v).median().item() for k, v in (("rem", remembered), ("never", never), ("ref", reference))}
    assert med["rem"] < 0.15 and med["never"] > 0.5 and med["ref"] < 0.1, med


def test_an_untrained_geometric_student_acts_as_its_teacher_on_geometry() -> None:
    """The correction starts at zero: the student's estimate is geometry's, normalised as the
    teacher's observation, and its action is the teacher's on that estimate."""
    W = 8
    teacher, _ = load_teacher(TEACHER)
    env = _env(W)
    geometry = env.keypoint_geometry()
    try:
        obs = env.reset(seed=1)
        img, prop = obs["depth_layers"][:, 0], obs["proprio"][:, 0]
        cfg = StudentConfig(memory="geometric", head="teacher")
        student = Student("depth_layers", tuple(img.shape[1:]), 4, 2, cfg, geometry, 0, (53, teacher.hidden))
        student.load_teacher_head(teacher)
        first = torch.ones(W, dtype=torch.bool)
        state = student.init_state(W)
        geo = _geo(env)
        ref = geo.init_state(W)
        for _ in range(3):
            act, state = student.step(img, prop, state, first)
            ref = geo.step(img.float(), prop, ref, first)
            first = torch.zeros(W, dtype=torch.bool)
            obs, *_ = env.step(act[:, None])
            img, prop = obs["depth_layers"][:, 0], obs["proprio"][:, 0]
    finally:
        env.close()
    assert torch.equal(state.out, ref.out)
    with torch.no_grad():
        want = torch.tanh(teacher.net(teacher.norm(ref.out).clamp(-5, 5)))
    assert torch.allclose(act, want, atol=1e-5)
    assert (ref.out[:, :48].view(W, 4, 4, 3)[..., 2] > 0).any()  # something was seen and shown
    with pytest.raises(ValueError, match="head 'teacher'"):
        Student("depth_layers", tuple(img.shape[1:]), 4, 2, StudentConfig(memory="geometric"), geometry)
    with pytest.raises(ValueError, match="frame_stack 1"):
        Student(
            "depth_layers",
            tuple(img.shape[1:]),
            4,
            2,
            StudentConfig(memory="geometric", head="teacher", frame_stack=2),
            geometry,
            0,
            (53, teacher.hidden),
        )
    with pytest.raises(ValueError, match="keypoint_geometry"):
        Student("depth_layers", tuple(img.shape[1:]), 4, 2, cfg, None, 0, (53, teacher.hidden))
    goal = envs.make("egopush-goal", num_envs=1)
    try:
        with pytest.raises(ValueError, match="one box per role"):
            GeoKeypoints(goal.keypoint_geometry(), (64, 64))
    finally:
        goal.close()


def test_geometric_student_trains_on_stored_estimates_and_reloads(tmp_path: Path) -> None:
    W, steps = 4, 8
    env = make_distill_env(TEACHER, num_envs=W, camera_resolution=(32, 32), anchor_marker=True)
    cfg = DaggerConfig(steps_per_iter=steps, buffer_steps=steps, updates_per_iter=2, aux_coef=1.0)
    labels = next(x for x in LABELS if x != StudentConfig().geo_labels)  # not the default
    student_cfg = StudentConfig(memory="geometric", head="teacher", geo_centres="corners", geo_labels=labels)
    assert StudentConfig().geo_centres != "corners"
    d = Distiller(env, TEACHER, student_cfg, cfg, W * steps * 2, 0, tmp_path)
    outs, step = [], d.student.step

    def recording_step(img, proprio, state, first):
        a, state = step(img, proprio, state, first)
        outs.append(state.out.clone())
        return a, state

    d.student.step = recording_step
    d.collect()
    assert torch.equal(d.buffer.data["geokp"], torch.stack(outs))
    d.student.step = step
    d.learn(progress=False)
    env.close()
    student, meta = Student.load(tmp_path / "checkpoint")
    assert meta["egomap_geometry"] == d.student.geometry and student.cfg.memory == "geometric"
    assert torch.equal(student.memory.teacher_norm.mean, d.teacher.norm.mean)
    assert student.cfg.geo_centres == "corners" and student.geokp.centres == "corners"
    assert student.cfg.geo_labels == labels and student.geokp.labels == labels
    # A geometric student saved before geo_centres existed learnt on pixel-mean centres: it keeps them.
    meta_file = tmp_path / "checkpoint" / "policy.json"
    saved = json.loads(meta_file.read_text())
    del saved["student"]["geo_centres"], saved["student"]["geo_labels"]
    meta_file.write_text(json.dumps(saved))
    old, _ = Student.load(tmp_path / "checkpoint")
    assert old.cfg.geo_centres == "pixels" and old.geokp.centres == "pixels"
    assert old.cfg.geo_labels == "robot" and old.geokp.labels == "robot"  # and named corners as the robot saw them
    eval_env = make_distill_env(TEACHER, num_envs=2, camera_resolution=(32, 32), anchor_marker=True)
    policy = make_policy(tmp_path / "checkpoint", eval_env)
    assert policy(eval_env.reset(seed=0)).shape == (2, 1, 2)
    eval_env.close()
    no_marker = make_distill_env(TEACHER, num_envs=2, camera_resolution=(32, 32))
    with pytest.raises(ValueError, match="anchor_marker"):
        Distiller(no_marker, TEACHER, student_cfg, cfg, 64, 0, tmp_path / "x")
    no_marker.close()


def test_camera_order_lists_a_cube_turned_by_quarter_turns_the_same_way() -> None:
    """A cube looks the same after a quarter turn: in the camera's order its corners are the same
    list at yaw y and y + k quarter turns, while the env's order differs (shifted by k places)."""
    from distill.egopush.probes import camera_order

    env = envs.make("egopush-line", num_envs=1)
    yaw = torch.tensor([0.3, 0.3 + math.pi / 2, 0.3 - math.pi, 0.3 + 1.5 * math.pi, -0.7])
    centre = torch.tensor([0.5, -0.2]).expand(len(yaw), 2)
    corners = env.corners(centre, yaw, scene.BOX_HALF)  # [5, 4, 2], the env's order
    kp = torch.cat((corners, torch.arange(4.0).expand(len(yaw), 4)[..., None]), -1)  # a per-corner flag travels too
    cam = camera_order(kp, yaw)
    for k in range(1, 4):
        assert not torch.allclose(corners[k], corners[0], atol=1e-4)  # the env's order tells the turns apart
        assert torch.allclose(cam[k, :, :2], cam[0, :, :2], atol=1e-5)
        assert torch.equal(cam[k, :, 2], kp[k, :, 2].roll(k, 0))
    assert torch.equal(cam[4], kp[4])  # a yaw already in [-45, 45) degrees keeps the env's order
    env.close()


def test_a_teacher_that_reads_the_room_s_corners_is_refused_by_name() -> None:
    # Geometry estimates the boxes' groups only: a teacher with room_keypoints would read 12 inputs it
    # cannot fill, so the student refuses it with an error that names the setting.
    env = _env(1, room_keypoints=True)
    with pytest.raises(ValueError, match="room_keypoints"):
        _geo(env)
    assert _geo(_env(1)).obs_dim == 4 * 4 * 3 + 5  # without them, as before
