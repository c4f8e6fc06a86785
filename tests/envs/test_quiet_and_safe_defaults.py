"""A CPU machine hears nothing about a missing CUDA driver, and benchmark scripts leave the committed
figures alone unless told to replace them (issue 51, item 15)."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from envs import warp_setup

ROOT = Path(__file__).resolve().parents[2]


def test_quiet_init_drops_only_the_missing_driver_line(capfd):
    def init():  # as Warp's native library writes: straight to file descriptor 2
        os.write(2, b"Warp CUDA warning: Could not find or load the NVIDIA CUDA driver. GPU execution ...\n")
        os.write(2, b"Warp CUDA error: something that matters\n")

    warp_setup.quiet_init(init)
    err = capfd.readouterr().err
    assert "NVIDIA CUDA driver" not in err and "Warp CUDA error: something that matters" in err


def test_quiet_init_restores_stderr_when_init_fails(capfd):
    def init():
        os.write(2, b"before the failure\n")
        raise RuntimeError("no warp")

    with pytest.raises(RuntimeError, match="no warp"):
        warp_setup.quiet_init(init)
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "before the failure\nafter\n"


def test_warp_starts_without_the_driver_warning():
    code = "from envs.warp_setup import warp_modules; warp_modules()"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "NVIDIA CUDA driver" not in run.stderr


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "scripts").glob("bench_*.py")))
def test_benchmarks_write_outside_the_committed_results_by_default(script):
    tree = ast.parse((ROOT / "scripts" / script).read_text())
    (config,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "BenchConfig"]
    (default,) = [
        ast.unparse(n.value)
        for n in config.body
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.target.id == "json"
    ]
    assert "runs" in default and "results" not in default, f"{script}: --json defaults to {default}"
