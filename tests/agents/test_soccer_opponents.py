"""The soccer benchmark's opponents mean something: the shipped teacher, which beats the attacking
scripted player, wins far less often against the defending one (at a development seed); and the
league of global teachers can face a fov player."""

from pathlib import Path

import pytest
import torch

import agents  # noqa: F401  (registers the teacher checkpoint kind)
import envs
from agents.evaluate import play_matches
from agents.policies import make_policy

ROOT = Path(__file__).resolve().parents[2]
TEACHER = ROOT / "checkpoints" / "soccer-1v1-teacher"


def _win_rate(opponent: str) -> float:
    env = envs.make("soccer-1v1", num_envs=32, nthread=1)
    result = play_matches(env, make_policy(TEACHER, env), make_policy(opponent, env), 32, seed=11, progress=False)
    env.close()
    return result["win_rate"]


def test_the_teacher_wins_far_less_against_the_defending_scripted_player():
    attacker, defender = _win_rate("scripted"), _win_rate("scripted-defend")
    assert attacker > 0.85, attacker
    assert defender < attacker - 0.25, (attacker, defender)


@pytest.mark.parametrize("name", ["soccer-1v1", "soccer-2v2"])
def test_a_fov_soccer_env_shows_global_opponents_their_own_observation(name):
    """A league of global teachers can face a fov student: the fov env keeps ``privileged_global``,
    equal step for step to what a global env of the same worlds shows, and a global teacher reads it."""
    glob, fov = envs.make(name, num_envs=3), envs.make(name, num_envs=3, observability="fov")
    assert "privileged_global" not in glob.observation_spaces
    o_glob, o_fov = glob.reset(seed=5), fov.reset(seed=5)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        a = torch.rand(3, glob.num_agents, 3, generator=g) * 2 - 1
        o_glob, *_ = glob.step(a)
        o_fov, *_ = fov.step(a)
        assert torch.equal(o_glob["privileged"], o_fov["privileged_global"])
    assert not torch.equal(o_glob["privileged"], o_fov["privileged"][..., : o_glob["privileged"].shape[-1]])
    if name == "soccer-1v1":
        league = make_policy(str(ROOT / "checkpoints" / "soccer-1v1-league" / "early"), fov)
        assert league.group == "privileged_global"
        same = make_policy(str(ROOT / "checkpoints" / "soccer-1v1-league" / "early"), glob)
        assert torch.equal(league(o_fov), same(o_glob))
