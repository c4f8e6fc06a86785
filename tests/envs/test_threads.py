"""torch's threads are chosen once per process when the first env is made, unless the user chose
(envs/threads.py). Each case runs in a fresh Python: the choice is the process's."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
USER_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "EGOTEACH_TORCH_THREADS")


def threads_after(code: str, **env_vars: str) -> tuple[int, str]:
    """Run ``code`` after ``import torch, envs`` in a fresh Python; torch's threads and who chose them."""
    env = {k: v for k, v in os.environ.items() if k not in USER_VARS} | env_vars
    script = (
        f"import torch, envs\nfrom envs import threads\n{code}\nprint(torch.get_num_threads(), threads.chosen_by())"
    )
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    n, who = run.stdout.split()[-2:]
    return int(n), who


MAKE = "envs.make('egopush-goal', num_envs=1).close()"


def test_making_an_env_gives_torch_one_thread_by_default():
    assert threads_after(MAKE) == (1, "egoteach")


def test_the_user_environment_variables_are_left_alone():
    assert threads_after(MAKE, OMP_NUM_THREADS="2") == (2, "user")
    assert threads_after(MAKE, EGOTEACH_TORCH_THREADS="3") == (3, "env")


def test_a_count_set_in_torch_before_the_env_is_kept():
    assert threads_after(f"torch.set_num_threads(3)\n{MAKE}") == (3, "user")


def test_the_knob_wins_and_later_envs_keep_it():
    assert threads_after(f"threads.choose_threads(3)\n{MAKE}\n{MAKE}") == (3, "knob")


@pytest.mark.parametrize("bad", ["two", "-1"])
def test_a_bad_environment_value_is_refused_by_name(bad):
    env = {k: v for k, v in os.environ.items() if k not in USER_VARS} | {"EGOTEACH_TORCH_THREADS": bad}
    code = f"import envs\n{MAKE}"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "EGOTEACH_TORCH_THREADS" in run.stderr
