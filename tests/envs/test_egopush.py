"""EgoPush: success test, observability masks, stage rewards, and nothing global for students."""

import math
import re

import pytest
import torch
from conftest import place_push

import envs
from envs.egopush import scene
from envs.egopush.tasks import SPACING

ZERO = torch.zeros(2, 1, 2)


def _line_in_place(env, w, shift=(0.0, 0.0)):
    """Anchor at the origin facing +x; boxes 1 and 2 on their line targets (+ shift on box 2)."""
    place_push(
        env,
        w,
        robot=(-1.2, -1.0, 0.0),
        boxes={0: (0.0, 0.0, 0.0), 1: (0.0, SPACING, 0.0), 2: (shift[0], 2 * SPACING + shift[1], 0.0)},
    )


def test_boxes_on_target_succeed_and_off_target_do_not():
    env = envs.make("egopush-line", num_envs=2)
    env.reset(seed=0)
    _line_in_place(env, 0)
    _line_in_place(env, 1, shift=(0.0, 0.2))  # box 2 is 20 cm beyond its target
    _, reward, term, trunc, info = env.step(ZERO)
    assert info["success"].tolist() == [True, False]
    assert term.tolist() == [True, False]
    assert info["final_obs"]["privileged"].shape[0] == 2
    assert info["reward_terms"]["success"][:, 0].tolist() == [1.0, 0.0]


def test_formation_follows_the_anchor_and_yaw_tolerance_when_set():
    env = envs.make("egopush-line", num_envs=2, yaw_tolerance=0.3)
    env.reset(seed=0)
    c, s = math.cos(1.0), math.sin(1.0)
    # The whole formation turned by 1 rad: still in place. World 1: box 1 turned by 40 degrees.
    boxes = {
        0: (0.2, 0.1, 1.0),
        1: (0.2 - s * SPACING, 0.1 + c * SPACING, 1.0),
        2: (0.2 - 2 * s * SPACING, 0.1 + 2 * c * SPACING, 1.0),
    }
    place_push(env, 0, robot=(-1.2, -1.2, 0.0), boxes=boxes)
    place_push(env, 1, robot=(-1.2, -1.2, 0.0), boxes={**boxes, 1: (*boxes[1][:2], 1.0 + math.radians(40))})
    assert env.placed_mask().tolist() == [[True, True], [False, True]]
    # A quarter turn is the same square: placed.
    place_push(env, 1, boxes={1: (*boxes[1][:2], 1.0 + math.pi / 2)})
    assert env.placed_mask()[1].tolist() == [True, True]


def _privileged_groups(env, w):
    """Privileged keypoints of world w as [groups, 4, 3] (x, y, visible)."""
    p = env.observe()["privileged"][w, 0]
    return p[: 12 * (3 + env.n_slots)].view(3 + env.n_slots, 4, 3)


def test_fov_masks_a_box_behind_and_not_one_in_front():
    env = envs.make("egopush-line", num_envs=2, observability="fov")
    env.reset(seed=0)
    far = {0: (1.5, 1.5, 0.0), 2: (-1.5, 1.5, 0.0)}
    place_push(env, 0, robot=(0.0, 0.0, 0.0), boxes={1: (1.0, 0.0, 0.3), **far})  # box 1 (active) ahead
    place_push(env, 1, robot=(0.0, 0.0, math.pi), boxes={1: (1.0, 0.0, 0.3), **far})  # ... behind
    env.memory.forget(torch.arange(2))  # what the reset's frame saw was seen before the worlds were rewritten
    front, back = _privileged_groups(env, 0), _privileged_groups(env, 1)
    assert front[0, :, 2].tolist() == [1.0] * 4
    assert back[0, :, 2].tolist() == [0.0] * 4
    assert back[0, :, :2].abs().sum() == 0  # masked keypoints carry no position
    # In global mode the same box behind is shown, at its true robot-frame position.
    glob = envs.make("egopush-line", num_envs=1)
    glob.reset(seed=0)
    place_push(glob, 0, robot=(0.0, 0.0, math.pi), boxes={1: (1.0, 0.0, 0.0), **far})
    g = _privileged_groups(glob, 0)
    assert g[0, :, 2].tolist() == [1.0] * 4
    torch.testing.assert_close(g[0, :, :2].mean(0), torch.tensor([-1.0, 0.0]), atol=1e-5, rtol=0)


def test_keypoint_memory_keeps_a_box_that_left_the_view_where_it_was_seen():
    env = envs.make("egopush-line", num_envs=2, observability="fov", memory_seconds=2.0)
    env.reset(seed=0)
    far = {0: (1.5, 1.5, 0.0), 2: (-1.5, 1.5, 0.0)}
    for w in (0, 1):
        place_push(env, w, robot=(0.0, 0.0, 0.0), boxes={1: (1.0, 0.0, 0.0), **far})  # box 1 ahead, seen
    assert _privileged_groups(env, 0)[0, :, 2].tolist() == [1.0] * 4
    # Turn world 0 round (the box is now behind) and let 10 control steps (0.5 s) pass.
    place_push(env, 0, robot=(0.0, 0.0, math.pi))
    env.episode_length[0] += 10
    back = _privileged_groups(env, 0)[0]
    # Remembered where it was seen, in the new robot frame: 1 m behind, shown (flag 1).
    torch.testing.assert_close(back[:, :2].mean(0), torch.tensor([-1.0, 0.0]), atol=1e-5, rtol=0)
    assert back[:, 2].tolist() == [1.0] * 4
    # Moving the box while out of view is not noticed: memory, not privileged state.
    place_push(env, 0, boxes={1: (0.0, 1.0, 0.0)})
    torch.testing.assert_close(
        _privileged_groups(env, 0)[0, :, :2].mean(0), torch.tensor([-1.0, 0.0]), atol=1e-5, rtol=0
    )
    # A new episode forgets: the box behind the robot is then unseen (no position, flag 0).
    env._reset_worlds(torch.tensor([0]))
    env.episode_length[0] = 0
    place_push(env, 0, robot=(0.0, 0.0, math.pi), boxes={1: (1.0, 0.0, 0.0), **far})
    fresh = _privileged_groups(env, 0)[0]
    assert fresh[:, 2].tolist() == [0.0] * 4 and fresh[:, :2].abs().sum() == 0
    # World 1 never turned: still in view, flag 1.
    assert _privileged_groups(env, 1)[0, :, 2].tolist() == [1.0] * 4


def _room(env, w, group="privileged"):
    """The room's corners of world w as [4, 3] (x, y in the robot frame, shown), the group's last 12."""
    return env.observe()[group][w, 0, -12:].view(4, 3)


def test_room_corners_shown_by_the_camera_rules_and_remembered():
    env = envs.make("egopush-line", num_envs=2, observability="fov", memory_seconds=2.0, room_keypoints=True)
    plain = envs.make("egopush-line", num_envs=2, observability="fov")
    assert env.observation_spaces["privileged"].shape[-1] == plain.observation_spaces["privileged"].shape[-1] + 12
    env.reset(seed=0)
    boxes = {0: (-1.5, 1.5, 0.0), 1: (-1.5, 0.0, 0.0), 2: (-1.5, -1.5, 0.0)}
    # Robot 1.5 m from the room's (+2, +2) corner, facing it (world 0) or facing away (world 1).
    place_push(env, 0, robot=(0.94, 0.94, math.pi / 4), boxes=boxes)
    place_push(env, 1, robot=(0.94, 0.94, -3 * math.pi / 4), boxes=boxes)
    env.memory.room_seen_step.fill_(-1)  # forget what the robots saw from where the reset put them
    a, b = _room(env, 0), _room(env, 1)
    # Corner 0 is (+2, +2) (the unit square's first corner): ahead, 1.5 m along the robot's x.
    assert a[0, 2] == 1.0 and b[0, 2] == 0.0
    torch.testing.assert_close(a[0, :2], torch.tensor([1.5, 0.0]), atol=2e-3, rtol=0)
    assert b[0, :2].abs().sum() == 0  # not shown: no position
    # The far corners lie beyond the camera's 3 m range: not shown in either world.
    assert a[2, 2] == 0.0 and b[2, 2] == 0.0
    # The critic reads every corner, world 1's corner behind it included, at its true position.
    crit = _room(env, 1, "critic")
    assert crit[:, 2].tolist() == [1.0] * 4
    torch.testing.assert_close(crit[0, :2], torch.tensor([-1.5, 0.0]), atol=2e-3, rtol=0)
    # World 0 turns away: the corner is remembered for memory_seconds (2 s = 40 steps), then dropped.
    place_push(env, 0, robot=(0.94, 0.94, -3 * math.pi / 4))
    env.episode_length[0] += 30
    kept = _room(env, 0)
    assert kept[0, 2] == 1.0
    torch.testing.assert_close(kept[0, :2], torch.tensor([-1.5, 0.0]), atol=2e-3, rtol=0)
    env.episode_length[0] += 20
    assert _room(env, 0)[0, 2] == 0.0
    # A global teacher is shown every corner.
    glob = envs.make("egopush-line", num_envs=1, room_keypoints=True)
    glob.reset(seed=0)
    place_push(glob, 0, robot=(0.94, 0.94, -3 * math.pi / 4), boxes=boxes)
    assert _room(glob, 0)[:, 2].tolist() == [1.0] * 4


@pytest.mark.parametrize("mode", ["fov", "fov_gated"])
def test_reference_gated_on_the_anchor_near_the_image_centre(mode):
    env = envs.make("egopush-line", num_envs=2, observability=mode)
    env.reset(seed=0)
    boxes = {0: (0.0, 0.0, 0.0), 1: (-1.5, 1.5, 0.0), 2: (-1.5, -1.5, 0.0)}
    # The anchor 1.2 m ahead, dead centre (world 0), or 20 degrees off to the side (world 1).
    for w, bearing in ((0, 0.0), (1, math.radians(20))):
        x, y = -1.2 * math.cos(bearing), 1.2 * math.sin(bearing)
        place_push(env, w, robot=(x, y, 0.0), boxes=boxes)
    ref0, ref1 = _privileged_groups(env, 0)[-1], _privileged_groups(env, 1)[-1]
    anchor1 = _privileged_groups(env, 1)[1]
    assert anchor1[:, 2].sum() == 4  # the anchor itself is in view in both worlds
    assert ref0[:, 2].sum() > 0
    if mode == "fov":
        assert ref1[:, 2].sum() > 0  # in view, so shown
    else:
        assert ref1[:, 2].sum() == 0  # in view, but the anchor is not near the centre


def test_stage_rewards_match_the_formula():
    # R * max(0, 1 - t_stage / T_stage); T_stage = 20 s at 20 Hz = 400 steps; R = 1 (reach), 2 (place).
    env = envs.make("egopush-goal", num_envs=2)
    env.reset(seed=0)
    assert env.max_episode_steps == 1200
    # World 0: 100 steps into the reach stage, the robot's pusher now touching the box.
    place_push(env, 0, robot=(0.0, 0.0, 0.0), boxes={0: (0.36, 0.0, 0.0)}, region=(-1.2, 1.2))
    env.stage_steps[0] = 100
    # World 1: 300 steps into the place stage; the box now sits on the region.
    place_push(env, 1, robot=(1.0, -1.0, 0.0), boxes={0: (-1.0, 1.0, 0.0)}, region=(-1.0, 1.0))
    env.stage[1] = env.best_stage[1] = 1
    env.stage_steps[1] = 300
    _, reward, term, _, info = env.step(ZERO)
    stage = info["reward_terms"]["stage"][:, 0]
    torch.testing.assert_close(stage, torch.tensor([1.0 * (1 - 101 / 400), 2.0 * (1 - 301 / 400)]))
    assert info["stage"][0] == 1 and bool(info["success"][1]) and bool(term[1])
    # Leaving and reaching again pays nothing twice.
    env.stage[0] = 0
    env.stage_steps[0] = 0
    _, _, _, _, info = env.step(ZERO)
    assert info["reward_terms"]["stage"][0, 0] == 0 and info["stage"][0] == 1


def test_pushing_the_anchor_costs_its_displacement_and_driving_past_it_costs_nothing():
    env = envs.make("egopush-line", num_envs=2, reward_scales={"anchor": 2.0})
    env.reset(seed=0)
    boxes = {0: (0.0, 0.0, 0.0), 1: (0.0, 1.2, 0.0), 2: (1.2, 1.2, 0.0)}
    place_push(env, 0, robot=(-0.4, 0.0, 0.0), boxes=boxes)  # the anchor right ahead of the robot
    place_push(env, 1, robot=(-1.5, -1.5, 0.0), boxes=boxes)  # open floor ahead
    start = env.task_state()["anchor_pos"].clone()
    cost = torch.zeros(2)
    for _ in range(30):
        _, _, term, trunc, info = env.step(torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]]))
        assert not (term | trunc).any()
        cost += info["reward_terms"]["anchor"][:, 0]
    moved = (env.task_state()["anchor_pos"] - start).norm(dim=-1)
    assert moved[0] > 0.2 and moved[1] < 1e-3, moved
    # Scaled by 2: at least twice the straight-line displacement (the path is not shorter).
    assert cost[0] <= -2 * 0.95 * moved[0] and cost[0] >= -2 * 1.5 * moved[0], (cost, moved)
    assert abs(float(cost[1])) < 2e-3


def test_knocking_a_placed_box_out_costs_one_knock_and_driving_past_it_nothing():
    env = envs.make("egopush-line", num_envs=2, reward_scales={"knock": 2.0})
    env.reset(seed=0)
    boxes = {0: (0.0, 0.0, 0.0), 1: (0.0, SPACING, 0.0), 2: (1.2, -1.2, 0.0)}  # box 1 on its target
    place_push(env, 0, robot=(-0.6, SPACING + 0.1, 0.0), boxes=boxes)  # box 1 ahead, the anchor clear
    place_push(env, 1, robot=(-1.5, -1.5, 0.0), boxes=boxes)  # open floor ahead
    assert env.placed_mask()[:, 0].tolist() == [True, True]
    knocks = []
    for _ in range(40):
        _, reward, term, trunc, info = env.step(torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]]))
        assert not (term | trunc).any()
        knocks.append(info["reward_terms"]["knock"][:, 0])
    knocks = torch.stack(knocks)
    assert env.placed_mask()[:, 0].tolist() == [False, True]  # pushed off its target in world 0 only
    assert knocks[:, 0].sum().item() == -2.0 and (knocks[:, 0] != 0).sum().item() == 1  # once, scaled by 2
    assert knocks[:, 1].abs().sum().item() == 0.0


def test_student_groups_hold_no_world_coordinates():
    # World 1 is world 0 turned a quarter about the room's centre and then shifted with its walls:
    # the same scene seen from the robot. Every group a student reads must be identical.
    env = envs.make("egopush-line", num_envs=2, cameras=("depth_layers", "rgb"))
    env.reset(seed=0)
    pose0 = {"robot": (-0.9, -0.3, 0.4), 0: (0.5, 0.2, 0.3), 1: (0.0, 0.9, -0.2), 2: (-0.3, -1.0, 1.1)}
    shift = torch.tensor([0.3, -0.25])

    def turn(x, y, yaw):
        return (-y + float(shift[0]), x + float(shift[1]), yaw + math.pi / 2)

    place_push(env, 0, robot=pose0["robot"], boxes={i: pose0[i] for i in range(3)})
    place_push(env, 1, robot=turn(*pose0["robot"]), boxes={i: turn(*pose0[i]) for i in range(3)})
    gp = env.sim.field("geom_pos")
    for name in ("wall_n", "wall_s", "wall_e", "wall_w"):
        g = env.mj_model.geom(name).id
        gp[1, g, :2] += shift.to(gp)
    obs = env.observe()
    for group in ("proprio", "privileged", "depth_layers"):
        torch.testing.assert_close(obs[group][0], obs[group][1], atol=2e-3, rtol=0, msg=group)
    assert (obs["depth_layers"][0] > 0).sum() > 50  # the robot sees boxes: the comparison means something
    assert (obs["camera"][0].float() - obs["camera"][1].float()).abs().mean() < 1.0
    # ...while a world-frame quantity differs between the two worlds.
    assert not torch.allclose(env.sim.qpos[0, :2], env.sim.qpos[1, :2])


def test_depth_layers_follow_roles():
    env = envs.make("egopush-line", num_envs=1, cameras=("depth_layers",))
    env.reset(seed=0)
    # Active box (1) straight ahead; anchor (0) ahead-left; obstacle (2) far behind.
    place_push(env, 0, robot=(0.0, 0.0, 0.0), boxes={1: (0.9, 0.0, 0.0), 0: (1.4, 0.6, 0.0), 2: (-1.5, 0.0, 0.0)})
    layers = env.observe()["depth_layers"][0, 0]
    active, anchor, obstacle = (layers > 0).flatten(1).sum(1).tolist()
    assert active > 100 and anchor > 20 and obstacle == 0
    # The active layer's nearest depth is the box's front face: 0.9 - 0.1 - camera offset.
    near = layers[0][layers[0] > 0].min().item()
    assert abs(near - (0.9 - scene.BOX_HALF - scene.CAM_X) / math.cos(math.radians(15))) < 0.05


def test_scripted_controller_solves_the_goal_task():
    from agents.evaluate import run_episodes
    from envs.egopush.scripted import ScriptedEgoPush

    env = envs.make("egopush-goal", num_envs=16)
    result = run_episodes(env, ScriptedEgoPush(env.n_slots), episodes=16, progress=False)
    assert result["success_rate"] >= 0.8 and result["reach_rate"] >= 0.8, result
    assert result["path_length"] > 0.5


@pytest.mark.parametrize("marker", [False, True])
def test_only_the_anchor_marker_shows_which_side_the_formation_is_on(marker):
    # World 1 is world 0 with the anchor turned a quarter: its targets move to another side, yet
    # a plain cube looks the same; with the marker, its role layer shows the turn.
    env = envs.make("egopush-line", num_envs=2, cameras=("depth_layers",), anchor_marker=marker)
    env.reset(seed=0)
    for w, yaw in ((0, 0.3), (1, 0.3 + math.pi / 2)):
        place_push(env, w, robot=(0.0, 0.0, 0.0), boxes={0: (1.2, 0.0, yaw), 1: (-1.4, 1.0, 0.0), 2: (-1.4, -1.0, 0.0)})
    obs = env.observe()
    anchor = obs["depth_layers"][:, 0, 1]
    assert (anchor[0] > 0).sum() > 50
    differs = (anchor[0] - anchor[1]).abs().max() > 0.05
    assert bool(differs) == marker
    names = [env.mj_model.geom(i).name for i in range(env.mj_model.ngeom)]
    assert ("anchor_marker" in names) == marker
    # The targets did move (the teacher's reference keypoints), and the physics is the marker-free one.
    s = env.task_state()
    assert (s["targets"][0] - s["targets"][1]).norm(dim=-1).min() > 0.2
    plain = envs.make("egopush-line", num_envs=1)
    assert torch.equal(torch.as_tensor(plain.mj_model.body_mass), torch.as_tensor(env.mj_model.body_mass))


def test_knock_counter_counts_a_placed_box_knocked_out_of_place():
    """``egopush_failures.py`` counts a knock-out where the number of boxes in place falls between
    control steps, and starts again with each episode."""

    from distill.egopush.probes import KnockCounter

    env = envs.make("egopush-line", num_envs=1)
    obs = env.reset(seed=0)
    counter = KnockCounter(env, lambda o: torch.zeros(1, 1, 2))
    far = (1.2, -1.2, 0.0)
    on_target = {0: (0.0, 0.0, 0.0), 1: (0.0, SPACING, 0.0), 2: far}
    place_push(env, 0, robot=(-1.2, -1.0, 0.0), boxes=on_target)
    obs, *_ = env.step(counter(obs))  # first step of the episode: box 1 in place, nothing counted
    assert env.placed_mask().sum().item() == 1 and counter.knocks.tolist() == [0]
    knocked = {1: (0.3, SPACING + 0.3, 0.0)}
    for expected, boxes in ((1, knocked), (1, on_target), (2, knocked), (2, knocked)):
        place_push(env, 0, boxes=boxes)
        obs, *_ = env.step(counter(obs))
        assert counter.knocks.tolist() == [expected]
    env.episode_length[:] = 0  # a new episode: counted afresh
    counter(obs)
    assert counter.knocks.tolist() == [0]


@pytest.mark.parametrize("script", ["egopush_failures", "egopush_gap", "soccer_gap"])
def test_experiment_scripts_name_a_folder_that_is_not_a_checkpoint(script, tmp_path):
    """The failure and gap scripts read a checkpoint's metadata through the checkpoint loader: a
    folder without one (a run directory, whose policy is in ``checkpoint/``) is a clear error."""
    from conftest import run_script

    teacher = [] if script == "egopush_failures" else ["--teacher", str(tmp_path)]
    out = run_script(f"experiments/{script}.py", str(tmp_path), *teacher, check=False)
    assert out.returncode != 0
    assert re.search(r"checkpoint: .* is not a policy checkpoint: expected policy.safetensors", out.stderr)


def test_failed_start_replay_brings_timed_out_starts_round_again():
    idle = torch.zeros(4, 1, 2)
    env = envs.make("egopush-line", num_envs=4, episode_seconds=0.5)
    T = env.max_episode_steps

    def episode():
        for _ in range(T):
            _, _, term, trunc, info = env.step(idle)
        assert trunc.all() and not term.any()  # an idle robot places nothing: every episode times out
        return info

    # Off (the default): each episode starts afresh.
    env.reset(seed=0)
    first = env.sim.qpos.clone()
    assert "replayed" not in episode()
    assert torch.cdist(env.sim.qpos, first).min() > 0.1
    # On, with probability 1: the worlds restart from the starts that just timed out, each once.
    env.replay_failed_starts(1.0)
    env.reset(seed=0)
    first = env.sim.qpos.clone()
    assert not episode()["replayed"].any()  # the episodes that ended began afresh
    d = torch.cdist(env.sim.qpos, first)
    assert (d.min(1).values == 0).all() and (d.min(0).values == 0).all()
    assert not env.start_replay.failed_held.any()  # a drawn start leaves the buffer...
    snap = env.snapshot()
    assert episode()["replayed"].all()
    again = env.sim.qpos.clone()
    assert (torch.cdist(again, first).min(1).values == 0).all()  # ...and comes back when it fails again
    env.restore(snap)  # the buffer is part of the snapshot: a resumed run draws the same starts
    episode()
    assert torch.equal(env.sim.qpos, again)


def test_failed_start_replay_keeps_no_solved_start_and_mixes_at_its_probability():
    env = envs.make("egopush-line", num_envs=2, episode_seconds=0.5)
    env.replay_failed_starts(1.0)
    env.reset(seed=0)
    first = env.sim.qpos.clone()
    for _ in range(env.max_episode_steps - 1):
        env.step(ZERO)
    _line_in_place(env, 0)  # world 0 solves its episode at the very last step, world 1 times out
    _, _, term, trunc, info = env.step(ZERO)
    assert term.tolist() == [True, False] and trunc.all() and info["success"].tolist() == [True, False]
    d = torch.cdist(env.sim.qpos, first)
    assert (d[:, 1] == 0).sum() == 1  # world 1's start was kept and comes round again, once;
    assert d[:, 0].min() > 0.1  # world 0's solved start was not kept
    # With probability 0.5 some of the worlds replay and some start afresh.
    env = envs.make("egopush-line", num_envs=16, episode_seconds=0.5)
    env.replay_failed_starts(0.5)
    env.reset(seed=0)
    first = env.sim.qpos.clone()
    for _ in range(2 * env.max_episode_steps):
        _, _, _, _, info = env.step(torch.zeros(16, 1, 2))
    assert 0 < int(info["replayed"].sum()) < 16
