"""A learned student's forward pass reads no privileged group (the students issue): with every group
but its camera and ``proprio`` poisoned with NaN, its actions stay finite and equal, step after step,
for every learned memory, on EgoPush (depth layers, by role and by identity) and soccer (RGB)."""

from pathlib import Path

import pytest
import torch

from distill.students import Student, StudentConfig, StudentPolicy
from distill.teacher_env import make_distill_env

ROOT = Path(__file__).resolve().parents[2]
TEACHERS = {
    "egopush": ROOT / "checkpoints" / "egopush-line-teacher-fov_gated-knock_anchor",
    "soccer": ROOT / "checkpoints" / "soccer-1v1-teacher",
}
LEARNED = [
    StudentConfig(memory="none", frame_stack=2, embed=8, hidden=16),
    StudentConfig(memory="gru", embed=8, hidden=16),
    StudentConfig(memory="transformer", window=4, heads=2, embed=8, hidden=16),
]


@pytest.mark.parametrize("cfg", LEARNED, ids=lambda c: c.memory)
@pytest.mark.parametrize("world", ["egopush", "egopush-identity", "soccer"])
def test_poisoned_privileged_groups_change_nothing(world: str, cfg: StudentConfig) -> None:
    extra = {"depth_layers": "identity"} if world == "egopush-identity" else {}
    env = make_distill_env(TEACHERS[world.split("-")[0]], num_envs=2, camera_resolution=(16, 16), **extra)
    group = "camera" if "camera" in env.observation_spaces else "depth_layers"
    torch.manual_seed(0)
    shape = env.observation_spaces[group].shape
    make = lambda: Student(group, shape, env.observation_spaces["proprio"].shape[0], env.act_dim, cfg).eval()  # noqa: E731
    clean = StudentPolicy(make())
    torch.manual_seed(0)
    poisoned = StudentPolicy(make())
    hidden = [g for g in env.observation_spaces if g not in (group, "proprio")]
    assert "privileged" in hidden
    obs = env.reset(seed=3)
    for _ in range(6):
        bad = {k: (torch.full_like(v.float(), float("nan")) if k in hidden else v) for k, v in obs.items()}
        a, b = clean(obs), poisoned(bad)
        assert torch.isfinite(b).all() and torch.equal(a, b)
        obs, *_ = env.step(a)
    # The check can fail: poisoning a group the student does read (proprio) turns its actions NaN.
    bad["proprio"] = torch.full_like(obs["proprio"], float("nan"))
    assert not torch.isfinite(poisoned(bad)).all()
    env.close()
