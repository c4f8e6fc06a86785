"""distill_student (distill.train): a run with its card, and the ablation table over runs."""

import dataclasses
import json
from pathlib import Path

import pytest

import envs
from agents.actor import GaussianActor
from distill.dagger import DaggerConfig
from distill.students import StudentConfig

ROOT = Path(__file__).resolve().parents[2]
GOAL_TEACHER = ROOT / "checkpoints" / "egopush-goal-teacher"
LINE_TEACHER = ROOT / "checkpoints" / "egopush-line-teacher-global"


def test_distill_script_writes_a_run_and_a_card_with_blank_camera_eval(tmp_path: Path) -> None:

    from distill import train as distill_student
    from envs.config import to_dict

    env = envs.make("soccer-1v1", num_envs=1, episode_seconds=2.0)  # short matches: a quick eval
    GaussianActor(env.observation_spaces["privileged"].shape[0], env.act_dim, (16, 16)).save(
        tmp_path / "teacher", "soccer-1v1", to_dict(env.cfg)
    )
    env.close()
    cfg = distill_student.DistillConfig(
        teacher=tmp_path / "teacher",
        num_envs=4,
        total_frames=64,
        resolution=(32, 32),
        run_dir=tmp_path / "run",
        eval_episodes=4,
        student=StudentConfig(embed=16, hidden=32),
        dagger=DaggerConfig(steps_per_iter=8, buffer_steps=8, updates_per_iter=1, batch_frames=8),
    )
    run = distill_student.distill(cfg)
    card = (run / "checkpoint" / "MODEL_CARD.md").read_text()
    assert "blank camera" in card and (run / "learning_curve.png").exists() and any((run / "tb").iterdir())
    results = json.loads((run / "eval.json").read_text())
    assert results["blank_camera"]["blank_camera"] is True and results["eval"]["episodes"] == 4
    with pytest.raises(ValueError, match="already holds a run"):
        distill_student.distill(cfg)
    with pytest.raises(ValueError, match="soccer-1v1"):
        distill_student.distill(distill_student.DistillConfig(teacher=tmp_path / "teacher", env="egopush-line"))
    with pytest.raises(ValueError, match="needs a teacher"):
        distill_student.distill(distill_student.DistillConfig())
    # --env-overrides changes the teacher's env for the run, and the student's checkpoint keeps it.
    short = dataclasses.replace(
        cfg, run_dir=tmp_path / "short", eval_episodes=0, env_overrides='{"episode_seconds": 1.5, "goal_width": 0.9}'
    )
    saved = json.loads((distill_student.distill(short) / "checkpoint" / "policy.json").read_text())
    assert saved["env_config"]["episode_seconds"] == 1.5 and saved["env_config"]["goal_width"] == 0.9
    for bad in ("[1.5]", "{episode_seconds: 1}"):
        with pytest.raises(ValueError, match="--env-overrides must be a JSON object"):
            distill_student.distill(dataclasses.replace(short, run_dir=tmp_path / "bad", env_overrides=bad))
    # --init-from: the student network comes from the checkpoint (no --student.* flags needed).
    warm = dataclasses.replace(
        cfg, run_dir=tmp_path / "warm", init_from=run / "checkpoint", student=StudentConfig(), eval_episodes=1
    )
    warm_run = distill_student.distill(warm)
    assert json.loads((warm_run / "config.json").read_text())["distill"]["student"]["hidden"] == 32
    assert (
        f"initialised from the student `{run / 'checkpoint'}`"
        in (warm_run / "checkpoint" / "MODEL_CARD.md").read_text()
    )
    with pytest.raises(ValueError, match="drop the --student"):
        distill_student.distill(dataclasses.replace(warm, run_dir=tmp_path / "w2", student=StudentConfig(hidden=64)))
    with pytest.raises(ValueError, match="not a student checkpoint"):
        distill_student.distill(dataclasses.replace(warm, run_dir=tmp_path / "w3", init_from=tmp_path / "teacher"))


def test_ablation_table_pools_the_seeds_episodes(tmp_path):
    """The ablation table's pooled row sums successes over the seeds (Wilson interval over all
    episodes), and is left out while a seed has not run."""
    from conftest import run_script

    from agents.evaluate import wilson_interval

    card = "| episodes | success [95% CI] |\n|---:|---|\n| 200 | 0.900 [0.851, 0.934] |\n"
    results = {"global": (0.03, 0.05), "fov": (0.12, 0.06), "fov_gated": (0.2, None)}
    for obs, rates in results.items():
        (tmp_path / "checkpoints" / f"egopush-line-teacher-{obs}").mkdir(parents=True)
        (tmp_path / "checkpoints" / f"egopush-line-teacher-{obs}" / "MODEL_CARD.md").write_text(card)
        for seed, rate in enumerate(rates):
            if rate is None:
                continue
            run = tmp_path / "runs" / f"egopush-line-student-map-{obs}-s{seed}"
            run.mkdir(parents=True)
            ci = wilson_interval(round(rate * 100), 100)
            res = {"episodes": 100, "success_rate": rate, "success_rate_ci95": ci, "reach_rate": 1.0}
            (run / "eval.json").write_text(json.dumps({"eval": res}))
            (run / "metrics.jsonl").write_text(json.dumps({"dagger/action_gap": 0.5}) + "\n")
    table = run_script("experiments/ablation_table.py", "--tag=-map", "--root", str(tmp_path)).stdout.strip()
    rows = {}
    for ln in table.splitlines()[2:]:
        cells = [c.strip() for c in ln.strip().strip("|").split("|")]
        assert cells[1] == "0.900 [0.851, 0.934]"  # the teacher's success, from its card
        rows[cells[0], cells[2]] = cells[3]
    lo, hi = wilson_interval(8, 200)
    assert rows["global", "pooled"] == f"0.040 [{lo:.3f}, {hi:.3f}] (200 ep.)"
    assert rows["fov", "pooled"].startswith("0.090 [")
    assert rows["fov", "1"].startswith("0.060 [")
    assert rows["fov_gated", "1"] == "(not run)"
    assert ("fov_gated", "pooled") not in rows
