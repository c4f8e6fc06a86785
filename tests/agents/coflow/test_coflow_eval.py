"""scripts/eval_coflow.py with a tiny budget: one row per (k, alpha) setting, k reaching the sampler."""

import json

from conftest import run_script

import envs
from agents.coflow import CoFlowModel, CoFlowPolicy, for_algo, load_model, save_model
from agents.evaluate import run_episodes
from agents.policies import make_policy
from envs.config import to_dict

TINY = dict(horizon=4, width=8, dim_mults=(1, 2), emb_dim=16, groups=4, cva_heads=4, id_hidden=16)


def played(checkpoint, steps: int, alpha: float, episodes: int = 2) -> float:
    """The mean return of the checkpoint with ``steps`` sampling steps, on the script's seeds."""
    model, meta = load_model(checkpoint, steps=steps)
    env = envs.make("mpe-spread", num_envs=episodes)
    try:
        policy = CoFlowPolicy(model, meta["obs_group"], seed=1000, alpha=alpha)
        return run_episodes(env, policy, episodes, seed=1000, progress=False)["mean_return"]
    finally:
        env.close()


def test_a_grid_of_k_and_alpha_is_evaluated_in_the_checkpoints_env(tmp_path):
    env = envs.make("mpe-spread", num_envs=1)
    model = CoFlowModel(for_algo("coflow-c", **TINY), 18, 5, 3)
    save_model(tmp_path / "ck", model, "mpe-spread", to_dict(env.cfg), 1.0)
    grid = ("--steps", "1", "2", "--alpha", "0", "1", "--episodes", "2", "--num-envs", "2", "--seed", "1000")
    run_script("eval_coflow.py", "--checkpoint", str(tmp_path / "ck"), *grid, "--json", str(tmp_path / "r.json"))
    rows = json.loads((tmp_path / "r.json").read_text())
    assert [(r["steps"], r["alpha"]) for r in rows] == [(1, 0.0), (1, 1.0), (2, 0.0), (2, 1.0)]
    assert all(r["episodes"] == 2 for r in rows)
    # k reached the sampler: each row plays as the checkpoint sampled with its k, and k changes play
    one_step = played(tmp_path / "ck", 1, 1.0)
    assert rows[1]["mean_return"] == one_step != played(tmp_path / "ck", 2, 1.0) == rows[3]["mean_return"]
    assert all(0.0 <= r["coverage"] <= 1.0 for r in rows)  # mpe-spread's landmark coverage, for alpha


def test_landmark_coverage_is_the_mean_share_of_landmarks_covered_at_the_end():
    env = envs.make("mpe-spread", num_envs=4)
    try:
        r = run_episodes(env, make_policy("scripted", env, seed=0), 4, seed=1000, progress=False)
        obs, policy = env.reset(seed=1000), make_policy("scripted", env, seed=0)
        for _ in range(env.max_episode_steps):  # the same episodes again, by hand
            obs, _, _, _, info = env.step(policy(obs))
        ends = [float(c) for c in info["coverage"]]
    finally:
        env.close()
    assert r["coverage"] == sum(ends) / 4
    assert r["success_rate"] <= r["coverage"] and r["coverage"] > 0.5  # the scripted player covers most
