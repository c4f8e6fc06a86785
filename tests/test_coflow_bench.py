"""scripts/bench_coflow.py with a tiny budget: the JSON holds both rates and their ratio."""

import importlib.util
import json
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_coflow.py"


def test_bench_writes_both_rates_and_the_speedup(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_coflow", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_coflow"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    out = tmp_path / "b.json"
    threads = torch.get_num_threads()
    try:
        module.main(module.BenchCoFlow(json=out, width=8, batch=2, horizon=8, calls=1, threads=1))
    finally:
        torch.set_num_threads(threads)  # the script sets the process's; the other tests keep theirs
    r = json.loads(out.read_text())
    assert r["sample_steps_k1"] == 1 and r["sample_steps_flow"] == 20
    assert r["speedup"] == r["actions_per_s_k1"] / r["actions_per_s_flow"]
    assert r["speedup"] > 3  # 20 network passes against 1: even a tiny, noisy run shows most of it
