"""DAgger distillation: losses by hand, the runner refuses bad teachers, the teacher labels (and
with beta = 1 drives), a short run learns, resumes and warm-starts."""

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

import envs
from agents.actor import GaussianActor
from agents.checkpoint import CheckpointError
from agents.policies import make_policy
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


def test_staggered_starts_end_the_worlds_first_episodes_at_different_steps(tmp_path: Path) -> None:
    W, steps = 6, 10
    ends = {}
    for stagger in (False, True):
        env = make_distill_env(GOAL_TEACHER, num_envs=W, camera_resolution=(16, 16), episode_seconds=0.5)
        assert env.max_episode_steps == 10
        cfg = DaggerConfig(steps_per_iter=steps, buffer_steps=steps, stagger_starts=stagger)
        d = Distiller(env, GOAL_TEACHER, StudentConfig(embed=8, hidden=16), cfg, 10**6, 0, tmp_path / str(stagger))
        d.collect()
        # A world's clock now counts the steps since its first episode ended (its whole run if none did).
        ends[stagger] = sorted(set(env.episode_length.tolist()))
        env.close()
    assert ends[False] == [0]  # every world timed out at step 10, together
    assert len(ends[True]) >= 3  # cut at different steps: the worlds' episodes no longer end together


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


@pytest.mark.slow  # about a minute on 2 cores
def test_short_dagger_run_imitates_the_teacher_and_checkpoints(tmp_path: Path) -> None:
    env = make_distill_env(GOAL_TEACHER, num_envs=8, camera_resolution=(32, 32))
    # The teacher's share of the acting falls from a half toward 0 over 4096 frames: the student acts
    # in a growing share of the steps, and its loss on the states it meets falls.
    cfg = DaggerConfig(beta=0.5, beta_frames=4096, steps_per_iter=8, buffer_steps=32, updates_per_iter=8)
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


def test_init_encoder_from_takes_only_the_encoder_of_a_student_with_another_memory(tmp_path: Path) -> None:
    env = make_distill_env(GOAL_TEACHER, num_envs=4, camera_resolution=(32, 32))
    cfg = DaggerConfig(steps_per_iter=4, buffer_steps=16, updates_per_iter=2, batch_frames=32)
    gru = StudentConfig(embed=16, hidden=32, memory="gru")
    trained = Distiller(env, GOAL_TEACHER, gru, cfg, 4 * 4 * 2, 0, tmp_path / "a")
    trained.learn(progress=False)
    source = trained.student.state_dict()
    tf = StudentConfig(embed=16, hidden=32, memory="transformer", window=4)
    fresh = Distiller(env, GOAL_TEACHER, tf, cfg, 64, 1, tmp_path / "b").student.state_dict()
    warm = Distiller(env, GOAL_TEACHER, tf, cfg, 64, 1, tmp_path / "c", init_encoder_from=tmp_path / "a" / "checkpoint")
    got = warm.student.state_dict()
    shared = [k for k in got if k.startswith(("encoder.", "proprio_norm."))]
    assert shared and all(torch.equal(got[k], source[k]) for k in shared)
    assert any(not torch.equal(got[k], fresh[k]) for k in shared)  # the encoder did move
    # The memory and head are this run's own (seeded as without the option), not the source's.
    rest = [k for k in got if k not in shared]
    assert rest and all(torch.equal(got[k], fresh[k]) for k in rest)
    warm.learn(progress=False)
    meta = json.loads((tmp_path / "c" / "checkpoint" / "policy.json").read_text())
    assert meta["init_encoder_from"].endswith("checkpoint")
    with pytest.raises(ValueError, match="does not fit"):
        Distiller(
            env,
            GOAL_TEACHER,
            StudentConfig(embed=8, hidden=32, memory="transformer", window=4),
            cfg,
            64,
            1,
            tmp_path / "d",
            init_encoder_from=tmp_path / "a" / "checkpoint",
        )
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
    feats, _ = a.student.features(batch["img"], batch["proprio"], batch["first"], {"h0": batch["hidden"][:, 0]})
    target = a.teacher.norm(batch["teacher_obs"]).clamp(-5, 5)
    aux = ((a.aux_head(feats) - target) ** 2).mean()
    a.generator.manual_seed(1)
    _, terms = a.loss(batch)
    assert math.isclose(terms["loss/aux"], float(aux), rel_tol=1e-5)
    # The prediction loss alone trains the camera encoder, not only its own head.
    a.student.zero_grad()
    aux.backward()
    assert a.student.encoder.fc.weight.grad.abs().sum() > 0 and a.student.memory.gru.weight_hh_l0.grad.abs().sum() > 0
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
