"""The soccer benchmark's opponents mean something: the shipped teacher, which beats the attacking
scripted player, wins far less often against the defending one (at a development seed)."""

from pathlib import Path

import agents  # noqa: F401  (registers the teacher checkpoint kind)
import envs
from agents.evaluate import play_matches
from agents.policies import make_policy

TEACHER = Path(__file__).resolve().parents[2] / "checkpoints" / "soccer-1v1-teacher"


def _win_rate(opponent: str) -> float:
    env = envs.make("soccer-1v1", num_envs=32, nthread=1)
    result = play_matches(env, make_policy(TEACHER, env), make_policy(opponent, env), 32, seed=11, progress=False)
    env.close()
    return result["win_rate"]


def test_the_teacher_wins_far_less_against_the_defending_scripted_player():
    attacker, defender = _win_rate("scripted"), _win_rate("scripted-defend")
    assert attacker > 0.85, attacker
    assert defender < attacker - 0.25, (attacker, defender)
