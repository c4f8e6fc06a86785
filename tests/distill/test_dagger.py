"""DAgger distillation: losses by hand, students' sequence and step paths agree, the runner
refuses bad teachers, the teacher labels (and with beta = 1 drives), and a short run learns."""

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

import envs
from agents.actor import GaussianActor
from agents.checkpoint import CheckpointError
from agents.policies import BlankCamera, make_policy
from distill.dagger import DaggerConfig, Distiller
from distill.losses import action_loss, alignment_loss, teacher_role_embeddings
from distill.students import Student, StudentConfig, StudentPolicy
from distill.teacher_env import make_distill_env

ROOT = Path(__file__).resolve().parents[2]
GOAL_TEACHER = ROOT / "checkpoints" / "egopush-goal-teacher"
LINE_TEACHER = ROOT / "checkpoints" / "egopush-line-teacher-global"


def test_action_losses_hand_worked() -> None:
    mu_s = torch.tensor([[0.5, 0.0]])
    mu_t = torch.tensor([[0.0, 1.0]])
    zero = torch.zeros(1, 2)
    assert action_loss("mse", mu_s, zero, mu_t, zero).item() == pytest.approx(0.25 + 1.0)
    # KL(N(0, 1) || N(0.5, 1)) = 0.125 and KL(N(1, 1) || N(0, 1)) = 0.5, summed over dimensions.
    assert action_loss("kl", mu_s, zero, mu_t, zero).item() == pytest.approx(0.625)
    # KL(N(0, 1) || N(0, e)) = 1 + 1 / (2 e^2) - 0.5, and 0 for equal distributions.
    kl = action_loss("kl", torch.zeros(1, 1), torch.ones(1, 1), torch.zeros(1, 1), torch.zeros(1, 1))
    assert kl.item() == pytest.approx(1 + 1 / (2 * math.e**2) - 0.5)
    assert action_loss("kl", mu_t, zero, mu_t, zero).item() == pytest.approx(0.0)
    with pytest.raises(ValueError, match="mse"):
        action_loss("huber", mu_s, zero, mu_t, zero)


def test_alignment_loss_compares_relations_not_embeddings() -> None:
    torch.manual_seed(0)
    teacher = torch.randn(5, 3, 16)
    # Same pairwise cosines in another space: a rotation and a positive scale per role.
    q, _ = torch.linalg.qr(torch.randn(16, 16))
    same = (teacher @ q) * torch.tensor([2.0, 0.5, 3.0])[None, :, None]
    assert alignment_loss(same, teacher).item() == pytest.approx(0.0, abs=1e-10)
    # Hand-worked: student roles 0 and 1 orthogonal (cos 0), the teacher's parallel (cos 1); every
    # pair with role 2 at 45 degrees in both (cos 1/sqrt 2): off-diagonal squared errors
    # (1, 1, 0, 0, 0, 0) -> mean 2 / 6.
    s = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    t = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]]])
    assert alignment_loss(s, t).item() == pytest.approx(2 / 6)


def test_teacher_role_embedding_reads_only_its_role() -> None:
    teacher, _ = GaussianActor.load(LINE_TEACHER)
    obs = torch.randn(4, teacher.obs_dim)
    base = teacher_role_embeddings(teacher, obs, 3)
    assert base.shape == (4, 3, teacher.net[0].out_features)
    moved = obs.clone()
    moved[:, 12:24] += 1.0  # the anchor's keypoint group (group 1)
    new = teacher_role_embeddings(teacher, moved, 3)
    assert torch.allclose(new[:, 0], base[:, 0]) and torch.allclose(new[:, 2], base[:, 2])
    assert not torch.allclose(new[:, 1], base[:, 1])


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


def test_distiller_refuses_missing_or_mismatched_teachers(tmp_path: Path) -> None:
    env = make_distill_env(GOAL_TEACHER, num_envs=2)
    try:
        with pytest.raises(ValueError, match="needs a teacher"):
            Distiller(env, None, StudentConfig(), DaggerConfig(), 64, 0, tmp_path)
        with pytest.raises(CheckpointError, match="egopush-line"):
            Distiller(env, LINE_TEACHER, StudentConfig(), DaggerConfig(), 64, 0, tmp_path)
    finally:
        env.close()
    plain = envs.make("egopush-goal", num_envs=2)  # renders no camera
    with pytest.raises(ValueError, match="camera"):
        Distiller(plain, GOAL_TEACHER, StudentConfig(), DaggerConfig(), 64, 0, tmp_path)


def test_beta_one_lets_the_teacher_drive(tmp_path: Path) -> None:
    """With beta = 1 the worlds follow the teacher exactly; the student's actions are unused."""
    W, steps = 4, 12
    env = make_distill_env(GOAL_TEACHER, num_envs=W, camera_resolution=(32, 32))
    cfg = DaggerConfig(beta=1.0, beta_frames=10**9, steps_per_iter=steps, buffer_steps=steps)
    d = Distiller(env, GOAL_TEACHER, StudentConfig(), cfg, 10**6, 3, tmp_path)
    d.collect()
    driven = env.sim.get_state()["qpos"].clone()
    # The teacher's labels are what the teacher says of the stored observations.
    labels = d.buffer.data["teacher_mu"]
    assert torch.allclose(labels, d.teacher(d.buffer.data["teacher_obs"]), atol=1e-6)
    env.close()
    ref = envs.make("egopush-goal", num_envs=W, **{"observability": d.teacher_meta["env_config"]["observability"]})
    teacher = make_policy(GOAL_TEACHER, ref)
    obs = ref.reset(seed=3)
    for _ in range(steps):
        obs, *_ = ref.step(teacher(obs))
    assert torch.allclose(ref.sim.get_state()["qpos"], driven, atol=1e-9)
    ref.close()


def test_gru_distiller_stores_the_memory_state_each_step_started_from(tmp_path: Path) -> None:
    W, steps = 4, 6
    env = make_distill_env(GOAL_TEACHER, num_envs=W, camera_resolution=(32, 32))
    cfg = DaggerConfig(steps_per_iter=steps, buffer_steps=steps, seq_len=4)
    d = Distiller(env, GOAL_TEACHER, StudentConfig(memory="gru", hidden=32), cfg, 10**6, 0, tmp_path)
    given, step = [], d.student.step

    def recording_step(img, proprio, state, first):
        given.append(state[0].clone())
        return step(img, proprio, state, first)

    d.student.step = recording_step
    d.collect()
    env.close()
    assert len(given) == steps
    assert torch.equal(d.buffer.data["hidden"], torch.stack(given))
    assert d.buffer.data["hidden"][1:].abs().sum() > 0  # the memory was in use
    off = Distiller(
        make_distill_env(GOAL_TEACHER, num_envs=W, camera_resolution=(32, 32)),
        GOAL_TEACHER,
        StudentConfig(memory="gru", hidden=32),
        DaggerConfig(steps_per_iter=steps, buffer_steps=steps, seq_len=4, stored_state=False),
        10**6,
        0,
        tmp_path / "off",
    )
    assert "hidden" not in off.buffer.data
    off.env.close()


def test_short_dagger_run_imitates_the_teacher_and_checkpoints(tmp_path: Path) -> None:
    env = make_distill_env(GOAL_TEACHER, num_envs=8, camera_resolution=(32, 32))
    cfg = DaggerConfig(beta=0.5, beta_frames=512, steps_per_iter=8, buffer_steps=32, updates_per_iter=8)
    d = Distiller(env, GOAL_TEACHER, StudentConfig(embed=32, hidden=64), cfg, 8 * 8 * 12, 0, tmp_path)
    history = d.learn(progress=False)
    env.close()
    assert len(history) == 12 and history[-1]["frames"] == 8 * 8 * 12
    first, last = history[0]["loss/mse"], history[-1]["loss/mse"]
    assert last < 0.5 * first, (first, last)
    assert "loss/align" in history[-1]  # depth_layers: relational alignment on by default
    # The checkpoint is a policy eval loads in a camera-rendering env; it remembers its teacher.
    eval_env = make_distill_env(GOAL_TEACHER, num_envs=2, camera_resolution=(32, 32))
    policy = make_policy(tmp_path / "checkpoint", eval_env)
    assert isinstance(policy, StudentPolicy)
    obs = eval_env.reset(seed=0)
    assert policy(obs).shape == (2, 1, 2)
    eval_env.close()
    no_camera = envs.make("egopush-goal", num_envs=2)
    with pytest.raises(CheckpointError, match="student reading"):
        make_policy(tmp_path / "checkpoint", no_camera)


def test_resume_continues_from_the_checkpoint(tmp_path: Path) -> None:
    def distiller() -> Distiller:
        env = make_distill_env(GOAL_TEACHER, num_envs=4, camera_resolution=(32, 32))
        cfg = DaggerConfig(steps_per_iter=4, buffer_steps=16, updates_per_iter=2, batch_frames=32)
        return Distiller(env, GOAL_TEACHER, StudentConfig(embed=16, hidden=32), cfg, 4 * 4 * 4, 0, tmp_path)

    a = distiller()
    a.total_iters = 2  # stop half-way, as an interrupted run would
    a.learn(progress=False)
    weights = {k: v.clone() for k, v in a.student.state_dict().items()}
    b = distiller()
    b.load()
    assert b.iteration == 2 and b.frames == 32 and len(b.history) == 2
    assert all(torch.equal(weights[k], v) for k, v in b.student.state_dict().items())
    b.learn(progress=False)
    assert b.iteration == 4 and [h["iteration"] for h in b.history] == [1, 2, 3, 4]


def test_init_from_starts_from_a_trained_students_weights(tmp_path: Path) -> None:
    env = make_distill_env(GOAL_TEACHER, num_envs=4, camera_resolution=(32, 32))
    cfg = DaggerConfig(steps_per_iter=4, buffer_steps=16, updates_per_iter=2, batch_frames=32)
    small = StudentConfig(embed=16, hidden=32)
    trained = Distiller(env, GOAL_TEACHER, small, cfg, 4 * 4 * 2, 0, tmp_path / "a")
    trained.learn(progress=False)
    weights = trained.student.state_dict()
    # Another seed would start elsewhere; from the checkpoint it starts exactly where "a" ended.
    fresh = Distiller(env, GOAL_TEACHER, small, cfg, 64, 1, tmp_path / "b")
    assert not all(torch.equal(weights[k], v) for k, v in fresh.student.state_dict().items())
    warm = Distiller(env, GOAL_TEACHER, small, cfg, 64, 1, tmp_path / "c", init_from=tmp_path / "a" / "checkpoint")
    assert all(torch.equal(weights[k], v) for k, v in warm.student.state_dict().items())
    assert warm.iteration == 0 and warm.frames == 0  # a new run: only the weights carry over
    warm.learn(progress=False)
    assert json.loads((tmp_path / "c" / "checkpoint" / "policy.json").read_text())["init_from"].endswith("checkpoint")
    # total_frames 0 from a trained student: no DAgger at all (to RL fine-tune it alone); without
    # one, a run still takes an iteration.
    none = Distiller(env, GOAL_TEACHER, small, cfg, 0, 1, tmp_path / "f", init_from=tmp_path / "a" / "checkpoint")
    none.learn(progress=False)
    assert none.frames == 0 and all(torch.equal(weights[k], v) for k, v in none.student.state_dict().items())
    assert Distiller(env, GOAL_TEACHER, small, cfg, 0, 1, tmp_path / "g").total_iters == 1
    with pytest.raises(ValueError, match="hidden 32 \\(asked 128\\)"):
        Distiller(
            env,
            GOAL_TEACHER,
            StudentConfig(embed=16),
            cfg,
            64,
            1,
            tmp_path / "d",
            init_from=tmp_path / "a" / "checkpoint",
        )
    with pytest.raises(CheckpointError, match="init_from"):
        Distiller(env, GOAL_TEACHER, small, cfg, 64, 1, tmp_path / "e", init_from=GOAL_TEACHER)
    env.close()


def test_privileged_prediction_head_trains_the_student_and_resumes(tmp_path: Path) -> None:
    def distiller(aux: float, run: str) -> Distiller:
        env = make_distill_env(GOAL_TEACHER, num_envs=4, camera_resolution=(32, 32))
        cfg = DaggerConfig(steps_per_iter=4, buffer_steps=16, updates_per_iter=2, batch_frames=32, aux_coef=aux)
        student = StudentConfig(embed=16, hidden=32, memory="gru")
        return Distiller(env, GOAL_TEACHER, student, cfg, 4 * 4 * 4, 0, tmp_path / run)

    assert distiller(0.0, "off").aux_head is None
    a = distiller(0.5, "on")
    a.total_iters = 2
    history = a.learn(progress=False)
    assert "loss/aux" in history[-1]
    batch = a.buffer.sample(4, 4, torch.Generator().manual_seed(0))
    feats, _ = a.student.features(batch["img"], batch["proprio"], batch["first"], batch["hidden"][:, 0])
    target = a.teacher.norm(batch["teacher_obs"]).clamp(-5, 5)
    aux = ((a.aux_head(feats) - target) ** 2).mean()
    a.generator.manual_seed(1)
    _, terms = a.loss(batch)
    assert math.isclose(terms["loss/aux"], float(aux), rel_tol=1e-5)
    # The prediction loss alone trains the camera encoder, not only its own head.
    a.student.zero_grad()
    aux.backward()
    assert a.student.encoder.fc.weight.grad.abs().sum() > 0 and a.student.memory.weight_hh_l0.grad.abs().sum() > 0
    assert all(p.grad is None for p in a.student.head.parameters())  # the action head is not involved
    # The head is training state: not in the student a policy loads, restored on resume.
    student, _ = Student.load(tmp_path / "on" / "checkpoint")
    assert set(student.state_dict()) == set(a.student.state_dict())
    head = {k: v.clone() for k, v in a.aux_head.state_dict().items()}
    b = distiller(0.5, "on")
    b.load()
    assert all(torch.equal(head[k], v) for k, v in b.aux_head.state_dict().items())
    plain = distiller(0.0, "plain")
    plain.total_iters = 1
    plain.learn(progress=False)
    with pytest.raises(CheckpointError, match="privileged-prediction"):
        distiller(0.5, "plain").load()
    with pytest.raises(ValueError, match="aux_coef"):
        distiller(-1.0, "bad")


def test_a_teacher_head_student_acts_as_its_teacher_on_a_right_estimate(tmp_path: Path) -> None:
    """``head=teacher``: the teacher's frozen network on the student's estimate of its normalised
    observation. An exact estimate gives the teacher's actions; training moves the estimator, never
    the teacher's weights; the student reloads (teacher head included) as ``eval.py`` loads it."""
    env = make_distill_env(GOAL_TEACHER, num_envs=4, camera_resolution=(32, 32))
    cfg = DaggerConfig(steps_per_iter=4, buffer_steps=16, updates_per_iter=2, batch_frames=32, aux_coef=1.0)
    student_cfg = StudentConfig(embed=16, hidden=32, head="teacher")
    d = Distiller(env, GOAL_TEACHER, student_cfg, cfg, 4 * 4 * 3, 0, tmp_path / "run")
    obs = env.reset(seed=0)["privileged"][:, 0]
    right = torch.tanh(d.student.teacher_head(d.teacher.norm(obs)))
    assert torch.allclose(right, d.teacher(obs), atol=1e-6)
    frozen = {k: v.clone() for k, v in d.student.teacher_head.state_dict().items()}
    estimator = {k: v.clone() for k, v in d.student.head.state_dict().items()}
    history = d.learn(progress=False)
    assert "loss/aux" in history[-1] and d.aux_head is None  # the estimate is the student's own
    assert all(torch.equal(frozen[k], v) for k, v in d.student.teacher_head.state_dict().items())
    assert any(not torch.equal(estimator[k], v) for k, v in d.student.head.state_dict().items())
    # The estimate loss is the squared error to the teacher's clipped normalised observation.
    batch = d.buffer.sample(8, 1, torch.Generator().manual_seed(0))
    feats, _ = d.student.features(batch["img"], batch["proprio"], batch["first"])
    with torch.no_grad():
        want = ((d.student.estimate(feats) - d.teacher.norm(batch["teacher_obs"]).clamp(-5, 5)) ** 2).mean()
    assert math.isclose(d.loss(batch)[1]["loss/aux"], float(want), rel_tol=1e-5)
    student, meta = Student.load(tmp_path / "run" / "checkpoint")
    assert meta["teacher_dims"] == [d.teacher.obs_dim, list(d.teacher.hidden)]
    img = batch["img"][:, 0].float()
    a, _ = student.step(img, batch["proprio"][:, 0], student.init_state(8), torch.ones(8, dtype=torch.bool))
    b, _ = d.student.step(img, batch["proprio"][:, 0], d.student.init_state(8), torch.ones(8, dtype=torch.bool))
    assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="aux_coef"):
        Distiller(env, GOAL_TEACHER, student_cfg, DaggerConfig(), 64, 0, tmp_path / "no-aux")
    env.close()
    with pytest.raises(ValueError, match="teacher_dims"):
        Student("depth_layers", (3, 32, 32), 4, 2, student_cfg)


def test_teacher_head_lr_trains_the_students_copy_of_the_teacher(tmp_path: Path) -> None:
    """``teacher_head_lr > 0``: the action loss moves the student's copy of the teacher too (the
    teacher itself untouched) at its fraction of the learning rate, the saved student holds the
    moved copy and a resume restores it; a student without a teacher head is refused by name."""
    env = make_distill_env(GOAL_TEACHER, num_envs=4, camera_resolution=(32, 32))
    cfg = DaggerConfig(steps_per_iter=4, buffer_steps=16, updates_per_iter=2, batch_frames=32, aux_coef=1.0)
    student_cfg = StudentConfig(embed=16, hidden=32, head="teacher")
    tuned_cfg = dataclasses.replace(cfg, teacher_head_lr=0.5)
    d = Distiller(env, GOAL_TEACHER, student_cfg, tuned_cfg, 4 * 4 * 3, 0, tmp_path / "run")
    teacher = {k: v.clone() for k, v in d.teacher.net.state_dict().items()}
    d.learn(progress=False)
    moved = d.student.teacher_head.state_dict()
    assert any(not torch.equal(teacher[k], v) for k, v in moved.items())
    assert all(torch.equal(teacher[k], v) for k, v in d.teacher.net.state_dict().items())
    assert [g["lr"] for g in d.optimizer.param_groups] == pytest.approx([cfg.lr, 0.5 * cfg.lr])
    student, _ = Student.load(tmp_path / "run" / "checkpoint")
    assert all(torch.equal(moved[k], v) for k, v in student.teacher_head.state_dict().items())
    again = Distiller(env, GOAL_TEACHER, student_cfg, tuned_cfg, 2 * 4 * 4 * 3, 0, tmp_path / "run")
    again.load()
    assert all(torch.equal(moved[k], v) for k, v in again.student.teacher_head.state_dict().items())
    with pytest.raises(ValueError, match="teacher_head_lr"):
        Distiller(env, GOAL_TEACHER, StudentConfig(embed=16, hidden=32), tuned_cfg, 64, 0, tmp_path / "mlp")
    env.close()


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
    assert distill_student._student_of(script_cfg).student == seg_cfg
    with pytest.raises(ValueError, match="drop the --student"):
        distill_student._student_of(dataclasses.replace(script_cfg, student=StudentConfig(segmentation=True, hidden=8)))


def _rollout_kl(ppo: Any, data: dict[str, Any]) -> float:
    """Mean KL(teacher || student) over a fine-tuning rollout, the student as it is now."""
    from agents.ppo.algorithm import gaussian_kl

    t_std = ppo.teacher.log_std.exp()
    with torch.no_grad():
        kls = []
        for mb, student_dist in ppo._minibatches(data):
            dist = student_dist()
            kls.append(float(gaussian_kl(mb["teacher_mu"], t_std.expand_as(dist.mean), dist.mean, dist.stddev).mean()))
    return sum(kls) / len(kls)


@pytest.mark.parametrize("memory", ["none", "gru"])
def test_rl_finetuning_warms_the_critic_then_pulls_toward_the_teacher(tmp_path: Path, memory: str) -> None:
    from distill.finetune import FinetuneConfig, StudentPPO

    env = make_distill_env(GOAL_TEACHER, num_envs=4, camera_resolution=(32, 32))
    d = Distiller(env, GOAL_TEACHER, StudentConfig(memory=memory, embed=16, hidden=32), DaggerConfig(), 64, 0, tmp_path)
    cfg = FinetuneConfig(kl_coef=5.0, lr=3e-3, steps_per_env=16, epochs=2, minibatches=2, critic_warmup=1)
    ppo = StudentPPO(env, d.student, d.teacher, cfg, 0, d.learners)
    before = {k: v.clone() for k, v in d.student.state_dict().items()}
    warm = ppo.update(ppo.rollout())
    assert warm["finetune/kl_teacher"] == 0.0
    assert all(torch.equal(before[k], v) for k, v in d.student.state_dict().items())  # only the critic moved
    # Updates on one rollout bring the student's actions on its states toward the teacher's
    # labels (the KL is measured on that rollout, with the memory it acted with for a GRU).
    data = ppo.rollout()
    kls = [_rollout_kl(ppo, data)]
    for _ in range(8):
        ppo.update(data)
        kls.append(_rollout_kl(ppo, data))
    env.close()
    assert kls[-1] < 0.5 * kls[0], kls
    with pytest.raises(ValueError, match="memory 'transformer'"):
        student = Student("depth_layers", (3, 32, 32), 4, 2, StudentConfig(memory="transformer"))
        StudentPPO(env, student, d.teacher, cfg, 0, [0])


def test_rl_finetuning_of_a_gru_student_replays_its_rollouts_from_the_memory_it_acted_with(tmp_path: Path) -> None:
    from distill.finetune import FinetuneConfig, StudentPPO

    # Episodes of 6 steps in rollouts of 16: resets inside rollouts, and memory carried across them.
    env = make_distill_env(GOAL_TEACHER, num_envs=4, camera_resolution=(32, 32), episode_seconds=0.28)
    assert env.max_episode_steps == 6
    d = Distiller(env, GOAL_TEACHER, StudentConfig(memory="gru", embed=16, hidden=32), DaggerConfig(), 64, 0, tmp_path)
    cfg = FinetuneConfig(kl_coef=5.0, lr=3e-3, steps_per_env=16, epochs=2, minibatches=2, critic_warmup=1)
    ppo = StudentPPO(env, d.student, d.teacher, cfg, 0, d.learners)
    ppo.update(ppo.rollout())  # critic warm-up
    data = ppo.rollout()  # the second rollout starts from the memory the first left
    assert data["first"][1:].any() and not data["first"][0].all() and data["h0"].abs().sum() > 0
    # Before any update of the student, the replay gives the log-probabilities it sampled with;
    # without the stored memory, or without the cuts at episode starts, it would not.
    with torch.no_grad():
        for mb, dist in ppo._minibatches(data):
            replay = dist().log_prob(mb["actions"]).sum(-1)
            torch.testing.assert_close(replay, mb["log_probs"], atol=1e-4, rtol=1e-4)
        cols = torch.arange(ppo.N)
        seq = {k: data[k][:, cols].transpose(0, 1) for k in ("img", "proprio", "first")}
        cold, _ = d.student(seq["img"], seq["proprio"], seq["first"])  # memory empty at the start
        uncut, _ = d.student(seq["img"], seq["proprio"], torch.zeros_like(seq["first"]), data["h0"])
        lp = lambda mu: ppo._normal(mu.flatten(0, 1)).log_prob(data["actions"].transpose(0, 1).flatten(0, 1)).sum(-1)  # noqa: E731
        logp = data["log_probs"].transpose(0, 1).flatten()
        assert not torch.allclose(lp(cold), logp, atol=1e-3) and not torch.allclose(lp(uncut), logp, atol=1e-3)
    env.close()


def test_adaptive_kl_coefficient_follows_its_target(tmp_path: Path) -> None:
    from distill.finetune import FinetuneConfig, StudentPPO

    env = make_distill_env(GOAL_TEACHER, num_envs=2, camera_resolution=(32, 32))
    d = Distiller(env, GOAL_TEACHER, StudentConfig(embed=16, hidden=32), DaggerConfig(), 64, 0, tmp_path)
    high = FinetuneConfig(kl_coef=1.0, steps_per_env=8, epochs=1, minibatches=1, critic_warmup=1, kl_target=1e-6)
    ppo = StudentPPO(env, d.student, d.teacher, high, 0, d.learners)
    stats = [ppo.update(ppo.rollout()) for _ in range(3)]
    assert [s["finetune/kl_coef"] for s in stats] == [1.0, 1.5, 2.25]  # warm-up, then a KL far above
    low = StudentPPO(env, d.student, d.teacher, dataclasses.replace(high, kl_target=1e6), 0, d.learners)
    stats = [low.update(low.rollout()) for _ in range(3)]
    env.close()
    assert [s["finetune/kl_coef"] for s in stats] == [1.0, 1.0 / 1.5, 1.0 / 2.25]


def test_distill_script_writes_a_run_and_a_card_with_blank_camera_eval(tmp_path: Path) -> None:

    from distill import train as distill_student
    from envs.config import to_dict

    env = envs.make("soccer-1v1", num_envs=1, episode_seconds=2.0)  # short matches: a quick eval
    GaussianActor(env.observation_spaces["privileged"].shape[0], env.act_dim, (16, 16)).save(
        tmp_path / "teacher", "soccer-1v1", to_dict(env.cfg)
    )
    env.close()
    cfg = distill_student.DistillConfig(
        teacher=tmp_path / "teacher",
        num_envs=4,
        total_frames=64,
        resolution=(32, 32),
        run_dir=tmp_path / "run",
        eval_episodes=4,
        student=StudentConfig(embed=16, hidden=32),
        dagger=DaggerConfig(steps_per_iter=8, buffer_steps=8, updates_per_iter=1, batch_frames=8),
    )
    run = distill_student.distill(cfg)
    card = (run / "checkpoint" / "MODEL_CARD.md").read_text()
    assert "blank camera" in card and (run / "learning_curve.png").exists() and any((run / "tb").iterdir())
    results = json.loads((run / "eval.json").read_text())
    assert results["blank_camera"]["blank_camera"] is True and results["eval"]["episodes"] == 4
    with pytest.raises(ValueError, match="already holds a run"):
        distill_student.distill(cfg)
    with pytest.raises(ValueError, match="soccer-1v1"):
        distill_student.distill(distill_student.DistillConfig(teacher=tmp_path / "teacher", env="egopush-line"))
    with pytest.raises(ValueError, match="needs a teacher"):
        distill_student.distill(distill_student.DistillConfig())
    # --env-overrides changes the teacher's env for the run, and the student's checkpoint keeps it.
    short = dataclasses.replace(
        cfg, run_dir=tmp_path / "short", eval_episodes=0, env_overrides='{"episode_seconds": 1.5, "goal_width": 0.9}'
    )
    saved = json.loads((distill_student.distill(short) / "checkpoint" / "policy.json").read_text())
    assert saved["env_config"]["episode_seconds"] == 1.5 and saved["env_config"]["goal_width"] == 0.9
    for bad in ("[1.5]", "{episode_seconds: 1}"):
        with pytest.raises(ValueError, match="--env-overrides must be a JSON object"):
            distill_student.distill(dataclasses.replace(short, run_dir=tmp_path / "bad", env_overrides=bad))
    # --init-from: the student network comes from the checkpoint (no --student.* flags needed).
    warm = dataclasses.replace(
        cfg, run_dir=tmp_path / "warm", init_from=run / "checkpoint", student=StudentConfig(), eval_episodes=1
    )
    warm_run = distill_student.distill(warm)
    assert json.loads((warm_run / "config.json").read_text())["distill"]["student"]["hidden"] == 32
    assert (
        f"initialised from the student `{run / 'checkpoint'}`"
        in (warm_run / "checkpoint" / "MODEL_CARD.md").read_text()
    )
    with pytest.raises(ValueError, match="drop the --student"):
        distill_student.distill(dataclasses.replace(warm, run_dir=tmp_path / "w2", student=StudentConfig(hidden=64)))
    with pytest.raises(ValueError, match="not a student checkpoint"):
        distill_student.distill(dataclasses.replace(warm, run_dir=tmp_path / "w3", init_from=tmp_path / "teacher"))


def test_learning_rate_schedule_decays_to_lr_final_by_the_last_update(tmp_path: Path) -> None:
    env = make_distill_env(GOAL_TEACHER, num_envs=2, camera_resolution=(32, 32))

    def run(**kw) -> list[float]:
        cfg = DaggerConfig(steps_per_iter=2, buffer_steps=4, updates_per_iter=1, batch_frames=4, lr=1e-3, **kw)
        d = Distiller(env, GOAL_TEACHER, StudentConfig(embed=16, hidden=32), cfg, 2 * 2 * 5, 0, tmp_path)
        seen = []
        step = d.optimizer.step

        def recording_step(*a, **k):
            seen.append(d.optimizer.param_groups[0]["lr"])
            return step(*a, **k)

        d.optimizer.step = recording_step
        d.learn(progress=False)
        assert [h["dagger/lr"] for h in d.history] == pytest.approx(seen)
        return seen

    try:
        # five updates: fractions 0, 1/4, 1/2, 3/4, 1 of the way from lr to lr_final
        assert run() == pytest.approx([1e-3] * 5)
        assert run(lr_schedule="linear", lr_final=2e-4) == pytest.approx([1e-3, 8e-4, 6e-4, 4e-4, 2e-4])
        half = 2e-4 + 8e-4 * 0.5 * (1 + math.cos(math.pi / 4))
        assert run(lr_schedule="cosine", lr_final=2e-4) == pytest.approx([1e-3, half, 6e-4, 1.2e-3 - half, 2e-4])
        for bad in (dict(lr_final=2e-3), dict(lr_final=-1.0), dict(lr_schedule="step")):
            with pytest.raises(ValueError, match="lr"):
                Distiller(env, GOAL_TEACHER, StudentConfig(), DaggerConfig(**bad), 64, 0, tmp_path)
    finally:
        env.close()


def test_ablation_table_pools_the_seeds_episodes(tmp_path):
    """The ablation table's pooled row sums successes over the seeds (Wilson interval over all
    episodes), and is left out while a seed has not run."""
    from conftest import run_script

    from agents.evaluate import wilson_interval

    card = "| episodes | success [95% CI] |\n|---:|---|\n| 200 | 0.900 [0.851, 0.934] |\n"
    results = {"global": (0.03, 0.05), "fov": (0.12, 0.06), "fov_gated": (0.2, None)}
    for obs, rates in results.items():
        (tmp_path / "checkpoints" / f"egopush-line-teacher-{obs}").mkdir(parents=True)
        (tmp_path / "checkpoints" / f"egopush-line-teacher-{obs}" / "MODEL_CARD.md").write_text(card)
        for seed, rate in enumerate(rates):
            if rate is None:
                continue
            run = tmp_path / "runs" / f"egopush-line-student-map-{obs}-s{seed}"
            run.mkdir(parents=True)
            ci = wilson_interval(round(rate * 100), 100)
            res = {"episodes": 100, "success_rate": rate, "success_rate_ci95": ci, "reach_rate": 1.0}
            (run / "eval.json").write_text(json.dumps({"eval": res}))
            (run / "metrics.jsonl").write_text(json.dumps({"dagger/action_gap": 0.5}) + "\n")
    table = run_script("experiments/ablation_table.py", "--tag", "-map", "--root", str(tmp_path)).stdout.strip()
    rows = {}
    for ln in table.splitlines()[2:]:
        cells = [c.strip() for c in ln.strip().strip("|").split("|")]
        assert cells[1] == "0.900 [0.851, 0.934]"  # the teacher's success, from its card
        rows[cells[0], cells[2]] = cells[3]
    lo, hi = wilson_interval(8, 200)
    assert rows["global", "pooled"] == f"0.040 [{lo:.3f}, {hi:.3f}] (200 ep.)"
    assert rows["fov", "pooled"].startswith("0.090 [")
    assert rows["fov", "1"].startswith("0.060 [")
    assert rows["fov_gated", "1"] == "(not run)"
    assert ("fov_gated", "pooled") not in rows
