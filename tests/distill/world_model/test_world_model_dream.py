"""The dream behind the batched env contract: shapes and dtypes, truncation and restart, bad
input refused by name."""

import json

import numpy as np
import pytest
import torch
from conftest import run_script

from distill.world_model.attention import AttentionConfig
from distill.world_model.dream import DreamEnv
from distill.world_model.positions import PositionConfig
from distill.world_model.student import Student, StudentConfig
from distill.world_model.teacher import WorldModelConfig
from distill.world_model.tokenizer import Tokenizer, TokenizerConfig
from distill.world_model.train import save_stage
from envs.recording import RecordingWriter


@pytest.fixture
def student_checkpoint(tmp_path):
    torch.manual_seed(0)
    tok = Tokenizer(TokenizerConfig(image_size=16, width=8, stages=2, latent_channels=4))
    model = WorldModelConfig(
        latent_channels=4,
        latent_size=4,
        dim=32,
        depth=1,
        heads=2,
        positions=PositionConfig(bands=(4, 6, 2, 4)),
        attention=AttentionConfig(hubs=2),
    )
    scfg = StudentConfig(block=2, window=6, sink=2, steps=2)
    return save_stage(tmp_path / "ckpt", "student", tok, Student(model, scfg), model, scfg)


def test_a_dream_steps_like_a_batched_env(student_checkpoint) -> None:
    env = DreamEnv(student_checkpoint, num_envs=3, num_agents=4, max_episode_steps=4)
    assert env.observation_spaces["camera"].shape == (3, 16, 16) and env.context == 2
    first = torch.randint(0, 256, (3, 2, 4, 3, 16, 16), dtype=torch.uint8)
    obs = env.reset(frames=first)
    assert torch.equal(obs["camera"], first[:, -1])
    for t in range(4):
        obs, reward, terminated, truncated, info = env.step(torch.rand(3, 4, 3) * 2 - 1)
        assert obs["camera"].shape == (3, 4, 3, 16, 16) and obs["camera"].dtype == torch.uint8
        assert reward.shape == (3, 4) and not terminated.any()
        assert info["frames"].shape == (3, 2, 4, 3, 16, 16)
        assert truncated.all() == (t == 3)
    # The fourth step truncated every world and restarted it from the same first frames.
    assert torch.equal(obs["camera"], first[:, -1]) and "final_obs" in info
    assert env.episode_length.tolist() == [0, 0, 0]


def test_a_dream_refuses_bad_input_by_name(student_checkpoint) -> None:
    with pytest.raises(ValueError, match="at most 4"):
        DreamEnv(student_checkpoint, num_envs=1, num_agents=5)
    env = DreamEnv(student_checkpoint, num_envs=2, num_agents=2)
    with pytest.raises(ValueError, match="reset needs first frames"):
        env.reset()
    with pytest.raises(ValueError, match=r"first frames must be \[W, Tc, A, 3, H, W\]"):
        env.reset(frames=torch.zeros(2, 1, 2, 3, 16, 16, dtype=torch.uint8))
    env.reset(frames=torch.zeros(2, 2, 2, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\[W, A, act_dim\] = \[2, 2, 3\]"):
        env.step(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="NaN"):
        env.step(torch.full((2, 2, 3), float("nan")))


def _recording(path, env: str, agents: int, T: int = 6):
    w = RecordingWriter(path, {"env": env, "config": {}, "policy": {"kind": "random"}}, ["camera"], 4, False)
    for e in range(2):
        w.add(
            {
                "actions": np.full((T, agents, 3), 0.5, np.float32),
                "rewards": np.zeros((T, agents), np.float32),
                "terminated": np.zeros(T, bool),
                "truncated": np.zeros(T, bool),
                "teleported": np.zeros(T, bool),
                "obs/camera": np.full((T + 1, agents, 3, 16, 16), 10 * e + 7, np.uint8),
            },
            {"return": [0.0] * agents},
        )
    w.close()
    return path


def test_a_dream_starts_from_recorded_first_frames(student_checkpoint, tmp_path) -> None:
    rec = _recording(tmp_path / "s2v2", "soccer-2v2", agents=4)
    env = DreamEnv(student_checkpoint, num_envs=5, num_agents=4, recordings=[rec], envs=["soccer-2v2"])
    obs = env.reset(seed=3)
    assert set(obs["camera"].unique().tolist()) <= {7, 17}  # the recorded frames, both episodes drawn from
    assert obs["camera"].shape == (5, 4, 3, 16, 16)
    two = DreamEnv(student_checkpoint, num_envs=1, num_agents=2, recordings=[rec], envs=["soccer-2v2"])
    with pytest.raises(ValueError, match=r"first frames must be \[W, Tc, A, 3, H, W\] = \[1, 2, 2"):
        two.reset()  # a 4-player recording cannot start a 2-player dream


def test_rollout_world_script_writes_video_and_metrics(student_checkpoint, tmp_path) -> None:
    rec = _recording(tmp_path / "s1v1", "soccer-1v1", agents=2, T=8)
    out, js = tmp_path / "r.gif", tmp_path / "r.json"
    args = ["--checkpoint", str(student_checkpoint), "--recording", str(rec), "--agents", "2", "--steps", "4"]
    args += ["--clips", "2", "--out", str(out), "--json", str(js)]
    run_script("rollout_world.py", *args)
    result = json.loads(js.read_text())
    assert len(result["psnr"]) == 4 and len(result["copy_ssim"]) == 4 and result["clips"] == 2
    assert out.is_file() and out.stat().st_size > 0


def test_rollout_world_plays_a_live_env_and_refuses_two_sources(student_checkpoint, tmp_path) -> None:
    js = tmp_path / "live.json"
    args = ["--checkpoint", str(student_checkpoint), "--agents", "2", "--steps", "4", "--clips", "2"]
    live = ["--env", "soccer-1v1", "--policy", "random", "--env-overrides", '{"episode_seconds": 1.0}']
    run_script("rollout_world.py", *args, *live, "--json", str(js))
    result = json.loads(js.read_text())
    assert (result["env"], result["policy"], result["recording"]) == ("soccer-1v1", "random", None)
    assert len(result["psnr"]) == 4 and result["clips"] == 2
    both = run_script("rollout_world.py", *args, *live, "--recording", str(tmp_path), check=False)
    assert both.returncode == 1 and "either --recording DIR or --env NAME" in both.stderr


def test_a_camera_and_proprio_vision_student_plays_inside_the_dream(student_checkpoint) -> None:
    # A GRU student of the shipped soccer students' kind (RGB + proprio), at the dream's image size.
    from distill.students import Student as VisionStudent
    from distill.students import StudentConfig as VisionConfig
    from distill.students import StudentPolicy

    env = DreamEnv(student_checkpoint, num_envs=2, num_agents=2, max_episode_steps=3, proprio_scale=(1.5, 1.5, 4.0))
    assert env.observation_spaces["proprio"].shape == (6,)
    policy = StudentPolicy(VisionStudent("camera", (3, 16, 16), 6, 3, VisionConfig(memory="gru", hidden=8, embed=8)))
    start_actions = torch.full((2, 2, 2, 3), 0.5)
    obs = env.reset(frames=torch.randint(0, 256, (2, 2, 2, 3, 16, 16), dtype=torch.uint8), actions=start_actions)
    torch.testing.assert_close(obs["proprio"][0, 0], torch.tensor([0.75, 0.75, 2.0, 0.5, 0.5, 0.5]))
    for t in range(3):
        act = policy(obs)
        assert act.shape == (2, 2, 3) and torch.isfinite(act).all()
        obs, *_ = env.step(act)
        if t < 2:  # the action just taken, and the velocity its servos track (an estimate)
            torch.testing.assert_close(obs["proprio"], torch.cat((act * torch.tensor([1.5, 1.5, 4.0]), act), -1))
    torch.testing.assert_close(obs["proprio"][..., 3:], torch.full((2, 2, 3), 0.5))  # restarted: the start's
    with pytest.raises(ValueError, match="one speed per action dim"):
        DreamEnv(student_checkpoint, num_envs=1, num_agents=2, proprio_scale=(1.0, 2.0))


def test_a_student_checkpoint_loads_into_the_dream_of_its_env_only(student_checkpoint, tmp_path) -> None:
    from agents.checkpoint import CheckpointError
    from agents.policies import make_policy
    from distill.students import Student as VisionStudent
    from distill.students import StudentConfig as VisionConfig

    torch.manual_seed(1)
    student = VisionStudent("camera", (3, 16, 16), 6, 3, VisionConfig(memory="gru", hidden=8, embed=8))
    path = student.save(tmp_path / "vision", "soccer-1v1", {})
    dream = DreamEnv(student_checkpoint, num_envs=2, num_agents=2, proprio_scale=(1.5, 1.5, 4.0), name="soccer-1v1")
    policy = make_policy(path, dream)
    obs = dream.reset(frames=torch.randint(0, 256, (2, 2, 2, 3, 16, 16), dtype=torch.uint8))
    act = policy(obs)
    assert act.shape == (2, 2, 3) and torch.isfinite(act).all()
    # The loaded student is the saved one: the same actions as the network itself on that frame.
    mean, _ = student.eval().step(
        obs["camera"].flatten(0, 1),
        obs["proprio"].flatten(0, 1),
        student.init_state(4),
        torch.ones(4, dtype=torch.bool),
    )
    torch.testing.assert_close(act, mean.view(2, 2, 3))
    unnamed = DreamEnv(student_checkpoint, num_envs=2, num_agents=2, proprio_scale=(1.5, 1.5, 4.0))
    assert unnamed.name == "dream"
    with pytest.raises(CheckpointError, match="trained on 'soccer-1v1', not 'dream'"):
        make_policy(path, unnamed)


def test_the_policy_check_scores_a_student_on_dreamed_against_real_frames(student_checkpoint, tmp_path) -> None:
    # A recording with every frame different, and proprio; two students of its env: one that reads
    # its camera, and one whose image encoder is zeroed (blind), which must act the same on any frames.
    from distill.students import Student as VisionStudent
    from distill.students import StudentConfig as VisionConfig

    rng = np.random.default_rng(0)
    T, A = 12, 2
    w = RecordingWriter(
        tmp_path / "rec",
        {"env": "soccer-1v1", "config": {}, "policy": {"kind": "random"}},
        ["camera", "proprio"],
        4,
        False,
    )
    for _ in range(2):
        w.add(
            {
                "actions": rng.uniform(-1, 1, (T, A, 3)).astype(np.float32),
                "rewards": np.zeros((T, A), np.float32),
                "terminated": np.zeros(T, bool),
                "truncated": np.zeros(T, bool),
                "teleported": np.zeros(T, bool),
                "obs/camera": rng.integers(0, 256, (T + 1, A, 3, 16, 16), dtype=np.uint8),
                "obs/proprio": rng.normal(size=(T + 1, A, 6)).astype(np.float32),
            },
            {"return": [0.0] * A},
        )
    w.close()
    figures = {}
    for blind in (False, True):
        torch.manual_seed(2)
        student = VisionStudent("camera", (3, 16, 16), 6, 3, VisionConfig(memory="gru", hidden=8, embed=8))
        if blind:
            for p in student.encoder.parameters():
                p.data.zero_()
        path = student.save(tmp_path / f"vision-{blind}", "soccer-1v1", {})
        js = tmp_path / f"policy-{blind}.json"
        args = ["--what", "policy", "--checkpoint", str(student_checkpoint), "--recording", str(tmp_path / "rec")]
        args += ["--agents", "2", "--policy", str(path), "--clips", "2", "--steps", "4", "--json", str(js)]
        run_script("experiments/world_model_checks.py", *args)
        figures[blind] = json.loads(js.read_text())
    seeing, blind = figures[False]["mean_abs_action_gap"], figures[True]["mean_abs_action_gap"]
    assert len(figures[False]["per_step"]["dreamed"]) == 4
    assert seeing["dreamed"] > 1e-4 and seeing["still"] > 1e-4
    assert blind["dreamed"] == 0.0 and blind["still"] == 0.0 and blind["other_clip"] > 1e-4  # proprio differs
