"""The benchmark scripts with tiny budgets, run as a user runs them: each writes its JSON, with the
fields the docs quote, and every ratio it prints is the quotient of the rates beside it."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_script

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b))


def test_bench_env_measures_the_plain_mujoco_baseline_and_the_ratios(tmp_path):
    out = tmp_path / "env.json"
    tiny = ("--envs", "egopush-line", "--worlds", "4", "--seconds", "0.1", "--no-cameras", "--async-workers", "1")
    run_script("bench_env.py", "--json", str(out), *tiny)
    r = json.loads(out.read_text())
    e = r["envs"]["egopush-line"]
    assert r["complete"] and e["async_workers"] == 1 and "PlainMujocoEnv" in e["async_baseline"]
    (row,) = e["rows"]
    assert min(e["async_steps_per_s"], row["ceiling_steps_per_s"], row["steps_per_s"]) > 0
    assert close(row["speedup_vs_async"], row["steps_per_s"] / e["async_steps_per_s"])
    assert close(row["ratio_to_ceiling"], row["steps_per_s"] / row["ceiling_steps_per_s"])
    # The state-only figure timed two episodes of every world (1200 steps each): their resets in the window.
    assert row["interleaved"] and row["steps_timed"] >= 2 * 1200 and row["episode_ends_timed"] >= 2 * 4


def test_plain_env_steps_the_mjcf_and_restates_the_goal_reward():
    import numpy as np

    from envs.plain import PlainMujocoEnv

    env = PlainMujocoEnv("egopush-goal", reward=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape and env.action_space.shape == (2,)
    q0 = env.data.qpos.copy()
    obs, reward, terminated, truncated, info = env.step(np.ones(2, np.float32))
    assert not np.array_equal(env.data.qpos, q0)  # the robot drove
    assert np.isfinite(reward) and not truncated and info["success"] == float(terminated)
    env.close()


@pytest.mark.slow  # four fresh processes: about 40 s on 2 cores
def test_bench_train_runs_each_thread_variant_as_a_user_starts_it(tmp_path):
    out = tmp_path / "train.json"
    tiny = (
        "--num-envs",
        "16",
        "--steps",
        "2048",
        "--threads-steps",
        "2048",
        "--threads-rounds",
        "1",
        "--threads-busy",
        "0",
    )
    tiny += ("--no-sb3",)
    run_script("bench_train.py", "--json", str(out), *tiny)
    r = json.loads(out.read_text())
    assert r["complete"] and r["egoteach"]["steps"] >= 2048
    best = r["threads_comparison"]["best"]
    assert {k: (v["torch_threads"], v["chosen_by"]) for k, v in best.items()} == {
        "egoteach_default": (1, "egoteach"),  # nothing set: envs.threads' choice
        "torch_default": (2 if (os.cpu_count() or 1) >= 2 else 1, "env"),
        "one": (1, "env"),
        "two": (2, "env"),
    }
    ratios = r["threads_comparison"]["steps_per_s_ratio_to_default"]
    base = best["egoteach_default"]["steps_per_s"]
    assert all(close(ratios[k], best[k]["steps_per_s"] / base) for k in best)


def test_bench_train_measures_both_sb3_baselines_on_the_same_budget(tmp_path):
    out = tmp_path / "train.json"
    tiny = ("--num-envs", "16", "--steps", "2048", "--threads-steps", "0", "--sb3-steps", "256", "--sb3-workers", "1")
    run_script("bench_train.py", "--json", str(out), *tiny)
    r = json.loads(out.read_text())
    assert r["complete"] and "threads_comparison" not in r
    for over in ("plain", "batched"):
        sb3 = r[f"sb3_{over}"]
        assert sb3["steps"] >= 256 and sb3["steps_per_s"] > 0
        assert close(r[f"speedup_vs_sb3_{over}"]["steps_per_s"], r["egoteach"]["steps_per_s"] / sb3["steps_per_s"])


def test_bench_distill_checks_the_cache_equal_at_each_layer_count(tmp_path):
    out = tmp_path / "distill.json"
    tiny = ("--num-envs", "4", "--iterations", "1", "--layers", "1", "2", "--contexts", "4", "8")
    run_script("bench_distill.py", "--json", str(out), *tiny, "--frames", "2", "--streams", "2", "--dim", "16")
    r = json.loads(out.read_text())
    assert r["complete"] and r["dagger"][0]["frames_per_s"] > 0
    rows = {(c["layers"], c["window"]): c for c in r["kv_cache"]}
    assert set(rows) == {(1, 4), (1, 8), (2, 4), (2, 8)}
    for (layers, window), c in rows.items():
        assert c["equal"] and c["max_abs_difference"] < 1e-4
        assert c["recompute_frames"] == layers * (window - 1) + 1
        assert close(c["speedup"], c["recompute_ms_per_frame"] / c["cached_ms_per_frame"])


def test_bench_distill_times_a_trained_students_own_transformer_across_episode_starts(tmp_path):
    from distill.dagger import DaggerConfig, Distiller
    from distill.students import StudentConfig
    from distill.teacher_env import make_distill_env

    teacher = Path(__file__).resolve().parents[2] / "checkpoints" / "soccer-1v1-teacher"
    # Episodes of 10 steps: the recorded frames hold episode starts, which both paths must honour.
    env = make_distill_env(teacher, num_envs=2, camera_resolution=(16, 16), episode_seconds=0.4)
    student = StudentConfig(memory="transformer", window=4, layers=2, heads=2, embed=8, hidden=16)
    Distiller(env, teacher, student, DaggerConfig(), 64, 0, tmp_path / "run").save()
    env.close()
    out = tmp_path / "distill.json"
    run_script(
        "bench_distill.py", "--json", str(out), "--student", str(tmp_path / "run" / "checkpoint"),
        "--num-envs", "--layers", "--frames", "4", "--streams", "2",
    )  # fmt: skip
    r = json.loads(out.read_text())
    assert r["complete"] and r["dagger"] == [] and r["kv_cache"] == []
    c = r["student_kv_cache"]
    assert (c["layers"], c["window"], c["recompute_frames"], c["streams"]) == (2, 4, 7, 2)
    assert c["equal"] and c["max_abs_difference"] < 1e-4 and c["episode_starts_inside"] >= 2


def test_a_run_cut_short_keeps_what_it_measured(tmp_path):
    out = tmp_path / "env.json"
    args = ["--json", str(out), "--envs", "egopush-line", "--worlds", "4", "--seconds", "4", "--async-workers", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(SCRIPTS / "bench_env.py"), *args], env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and '"async_steps_per_s"' not in (out.read_text() if out.exists() else ""):
            time.sleep(0.1)
    finally:
        proc.kill()  # 4 s per figure: killed while measuring its first W
        proc.wait()
    r = json.loads(out.read_text())
    assert not r["complete"] and r["envs"]["egopush-line"]["async_steps_per_s"] > 0
