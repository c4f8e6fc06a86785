"""Vision students: the sequence and step paths agree, a blank camera, RGB and segmentation students."""

import dataclasses
from pathlib import Path

import pytest
import torch

import envs
from agents.actor import GaussianActor
from agents.checkpoint import CheckpointError
from agents.policies import BlankCamera
from distill.dagger import DaggerConfig, Distiller
from distill.students import Student, StudentConfig
from distill.teacher_env import make_distill_env

ROOT = Path(__file__).resolve().parents[2]
GOAL_TEACHER = ROOT / "checkpoints" / "egopush-goal-teacher"
LINE_TEACHER = ROOT / "checkpoints" / "egopush-line-teacher-global"


@pytest.mark.parametrize(
    ("group", "shape", "cfg"),
    [
        ("depth_layers", (3, 32, 32), StudentConfig(memory="none", frame_stack=3)),
        ("depth_layers", (3, 32, 32), StudentConfig(memory="gru")),
        ("camera", (3, 32, 32), StudentConfig(memory="transformer", window=4)),
    ],
)
def test_student_sequence_and_step_paths_agree(group: str, shape: tuple, cfg: StudentConfig) -> None:
    torch.manual_seed(0)
    student = Student(group, shape, 4, 2, cfg).eval()
    B, T = 2, 9
    img = torch.rand(B, T, *shape) * (255 if group == "camera" else 3)
    if group == "camera":
        img = img.to(torch.uint8)
    prop = torch.randn(B, T, 4)
    first = torch.zeros(B, T, dtype=torch.bool)
    first[:, 0] = True
    first[1, 5] = True
    with torch.no_grad():
        seq, roles = student(img, prop, first)
    state = student.init_state(B)
    steps = []
    for t in range(T):
        a, state = student.step(img[:, t], prop[:, t], state, first[:, t])
        steps.append(a)
    assert torch.allclose(torch.stack(steps, 1), seq, atol=1e-5)
    assert (roles is None) == (group == "camera")
    # Memory matters: without the episode start in row 1, its later actions change.
    if cfg.memory != "none" or cfg.frame_stack > 1:
        with torch.no_grad():
            other, _ = student(img, prop, torch.zeros_like(first))
        assert not torch.allclose(other[1, 5:], seq[1, 5:], atol=1e-4)
    if cfg.memory == "gru":
        # A sequence started from a stored state (the one step() held before step 3) goes on
        # exactly as the step path did; from an empty memory it does not.
        state = student.init_state(B)
        for t in range(3):
            _, state = student.step(img[:, t], prop[:, t], state, first[:, t])
        with torch.no_grad():
            tail, _ = student(img[:, 3:], prop[:, 3:], first[:, 3:], state[0])
            empty, _ = student(img[:, 3:], prop[:, 3:], first[:, 3:])
        assert torch.allclose(tail, seq[:, 3:], atol=1e-5)
        assert not torch.allclose(empty[0], seq[0, 3:], atol=1e-4)


def test_blank_camera_zeroes_images_only() -> None:
    seen = {}

    def probe(obs: dict) -> torch.Tensor:
        seen.update(obs)
        return torch.zeros(1, 1, 2)

    obs = {"depth_layers": torch.ones(1, 1, 3, 4, 4), "camera": torch.full((1, 1, 3, 4, 4), 7, dtype=torch.uint8)}
    obs["proprio"] = torch.ones(1, 1, 4)
    BlankCamera(probe)(obs)
    assert seen["depth_layers"].abs().sum() == 0 and seen["camera"].sum() == 0
    assert torch.equal(seen["proprio"], obs["proprio"])


def test_soccer_student_learns_from_team_zero_rgb(tmp_path: Path) -> None:
    """Soccer: the student reads RGB, drives team 0 against the scripted team, and is labelled
    by a (here freshly initialised) teacher of team 0."""
    from envs.config import to_dict

    env = envs.make("soccer-1v1", num_envs=1)
    teacher = GaussianActor(env.observation_spaces["privileged"].shape[0], env.act_dim, (32, 32))
    teacher.save(tmp_path / "teacher", "soccer-1v1", to_dict(env.cfg))
    env.close()
    env = make_distill_env(tmp_path / "teacher", num_envs=4, camera_resolution=(32, 32))
    assert "camera" in env.observation_spaces and "depth_layers" not in env.observation_spaces
    cfg = DaggerConfig(beta=0.0, steps_per_iter=4, buffer_steps=8, updates_per_iter=2, batch_frames=16)
    d = Distiller(env, tmp_path / "teacher", StudentConfig(embed=16, hidden=32), cfg, 4 * 4 * 2, 0, tmp_path / "run")
    assert d.K == 1 and d.slots == 4 and d.align == 0.0
    history = d.learn(progress=False)
    env.close()
    assert "loss/align" not in history[-1] and history[-1]["loss/mse"] > 0
    # The buffer's images are team 0's own camera: uint8 RGB.
    assert d.buffer.data["img"].dtype == torch.uint8 and d.buffer.data["img"].shape[-3:] == (3, 32, 32)


def test_segmentation_channels_join_an_rgb_student_without_changing_its_actions(tmp_path: Path) -> None:
    """``--student.segmentation``: the env's segmentation classes, one-hot, become input channels
    of an RGB student; warm-started from an RGB student they start at zero weight (the same
    actions), training gives them weight, and the checkpoint asks its env for both images."""
    from agents.checkpoint import read_meta
    from agents.policies import checkpoint_env, load_checkpoint_policy
    from distill import train as distill_student
    from envs.config import to_dict

    env = envs.make("soccer-1v1", num_envs=1)
    GaussianActor(env.observation_spaces["privileged"].shape[0], env.act_dim, (16, 16)).save(
        tmp_path / "teacher", "soccer-1v1", to_dict(env.cfg)
    )
    env.close()
    teacher = tmp_path / "teacher"
    cfg = DaggerConfig(steps_per_iter=4, buffer_steps=8, updates_per_iter=2, batch_frames=16, seq_len=4)
    rgb_cfg = StudentConfig(memory="gru", embed=16, hidden=32)
    rgb_env = make_distill_env(teacher, num_envs=4, camera_resolution=(32, 32))
    Distiller(rgb_env, teacher, rgb_cfg, cfg, 4 * 4, 0, tmp_path / "rgb").learn(progress=False)
    rgb_env.close()
    rgb, _ = Student.load(tmp_path / "rgb" / "checkpoint")

    env = make_distill_env(teacher, num_envs=4, segmentation=True, camera_resolution=(32, 32))
    seg_cfg = dataclasses.replace(rgb_cfg, segmentation=True)
    with pytest.raises(ValueError, match="segmentation"):  # an env without the segmentation image
        Distiller(make_distill_env(teacher, num_envs=1), teacher, seg_cfg, cfg, 16, 0, tmp_path / "x")
    d = Distiller(env, teacher, seg_cfg, cfg, 4 * 4 * 3, 0, tmp_path / "seg", init_from=tmp_path / "rgb" / "checkpoint")
    student = d.student
    assert student.seg_classes == 9 and student.image_groups == ("camera", "segmentation")
    obs = env.reset(seed=3)
    img = student.gather_image(lambda g: d.team.slots(obs, g))
    assert img.dtype == torch.uint8 and img.shape[-3:] == (4, 32, 32)
    # One-hot: exactly one class channel lit per pixel, the pixel's class.
    x = student.image_input(img)
    assert x.shape[-3] == 3 + 9 and torch.equal(x[:, 3:].sum(1), torch.ones_like(x[:, 0]))
    assert torch.equal(x[:, 3:].argmax(1), img[:, 3].long()) and len(img[:, 3].unique()) > 2
    # Warm start: the new channels start at zero weight, so it acts as the RGB student does.
    prop, first = d.team.slots(obs, "proprio").float(), torch.ones(4, dtype=torch.bool)
    a_rgb, _ = rgb.step(img[:, :3], prop, rgb.init_state(4), first)
    a_seg, _ = student.step(img, prop, student.init_state(4), first)
    assert torch.allclose(a_rgb, a_seg, atol=1e-6)
    assert student.encoder.conv[0].weight[:, 3:].abs().sum() == 0
    d.learn(progress=False)
    assert student.encoder.conv[0].weight[:, 3:].abs().sum() > 0  # training reaches the new channels
    assert d.buffer.data["img"].shape[-3:] == (4, 32, 32)
    # Now the segmentation image alone changes its action.
    other = img.clone()
    other[:, 3] = (other[:, 3] + 1) % 9
    with torch.no_grad():
        b1, _ = student.step(img, prop, student.init_state(4), first)
        b2, _ = student.step(other, prop, student.init_state(4), first)
    assert not torch.allclose(b1, b2)
    env.close()
    # The checkpoint keeps the classes and an env config with both cameras; an env without the
    # segmentation image is refused by name.
    ckpt = tmp_path / "seg" / "checkpoint"
    assert read_meta(ckpt)["segmentation_classes"] == 9
    name, env_cfg = checkpoint_env(ckpt)
    assert tuple(env_cfg["cameras"]) == ("rgb", "segmentation")
    eval_env = envs.make(name, num_envs=2, **env_cfg)
    policy = load_checkpoint_policy(ckpt, eval_env)
    assert policy(eval_env.reset(seed=0)).shape == (2, 2, eval_env.act_dim)  # every player of each world
    eval_env.close()
    plain = envs.make(name, num_envs=1, camera_resolution=(32, 32), cameras=("rgb",))
    with pytest.raises(CheckpointError, match="segmentation"):
        load_checkpoint_policy(ckpt, plain)
    plain.close()
    # The script: --student.segmentation may be added to an --init-from RGB student, nothing else.
    script_cfg = distill_student.DistillConfig(
        teacher=teacher, init_from=tmp_path / "rgb" / "checkpoint", student=StudentConfig(segmentation=True)
    )
    assert distill_student.student_of(script_cfg).student == seg_cfg
    with pytest.raises(ValueError, match="drop the --student"):
        distill_student.student_of(dataclasses.replace(script_cfg, student=StudentConfig(segmentation=True, hidden=8)))
