"""The shipping pipeline's commands, run as a user runs them: compare_runs (the others, ship_critic
and soccer_widen, are run by tests/agents/test_train_teacher.py)."""

import json

from conftest import run_script


def _run(path, rows):
    path.mkdir()
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_compare_runs_bins_weigh_each_iteration_by_its_episodes(tmp_path):
    # Bin 0 (steps 0-999): 1.0 over 1 episode and 0.5 over 3 -> (1 + 1.5) / 4 = 0.625; bin 1000: 0.2.
    _run(
        tmp_path / "a",
        [
            {"env_steps": 500, "episode/success_rate": 1.0, "episode/count": 1},
            {"env_steps": 900, "episode/success_rate": 0.5, "episode/count": 3},
            {"env_steps": 1500, "episode/success_rate": 0.2, "episode/count": 5},
        ],
    )
    _run(tmp_path / "b", [{"env_steps": 100, "episode/loss": 1.0}])
    out = run_script("compare_runs.py", str(tmp_path / "a"), "--bin", "1000", "--out", str(tmp_path / "c.png"))
    assert "0M: 0.625  0.001M: 0.200" in out.stdout and (tmp_path / "c.png").stat().st_size > 0
    refused = run_script("compare_runs.py", str(tmp_path / "b"), check=False)
    assert refused.returncode != 0 and "no 'episode/success_rate' in its metrics.jsonl" in refused.stderr
