"""scripts/bench_coflow.py with a tiny budget: the JSON holds both rates and their ratio."""

import json

from conftest import run_script


def test_bench_writes_both_rates_and_the_speedup(tmp_path):
    out = tmp_path / "b.json"
    tiny = ("--width", "8", "--batch", "2", "--horizon", "8", "--calls", "1", "--threads", "1")
    run_script("bench_coflow.py", "--json", str(out), *tiny)
    r = json.loads(out.read_text())
    assert r["sample_steps_k1"] == 1 and r["sample_steps_flow"] == 20
    assert r["speedup"] == r["actions_per_s_k1"] / r["actions_per_s_flow"]
    assert r["speedup"] > 3  # 20 network passes against 1: even a tiny, noisy run shows most of it
