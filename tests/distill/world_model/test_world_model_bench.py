"""The world-model benchmark runs as a user runs it and writes every field the issue asks for."""

import json

from conftest import run_script


def test_bench_world_model_writes_its_fields(tmp_path) -> None:
    out = tmp_path / "bench.json"
    args = ["--agents", "2", "--horizon", "2", "--teacher-steps", "2", "--rounds", "1", "--json", str(out)]
    args += ["--hub-vs-dense-agents", "2"]
    run_script("bench_world_model.py", *args)
    result = json.loads(out.read_text())
    assert result["untrained_weights"] is True
    (row,) = result["rows"]
    fields = ("agents", "student_fps", "recompute_fps", "teacher_fps", "speedup_vs_teacher", "kv_speedup")
    assert all(k in row for k in fields) and row["agents"] == 2
    assert row["kv_speedup"] == row["student_fps"] / row["recompute_fps"] > 0
    (cmp,) = result["hub_vs_dense"]
    assert cmp["agents"] == 2 and cmp["hub_ms"] > 0 and cmp["dense_attention_gflop"] > 0
