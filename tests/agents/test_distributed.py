"""PPO in several processes (torchrun), with Gloo on 2 CPU processes: the averaged gradient is the
combined batch's, the ranks keep one model, a 2-rank resume is exact, a resume in another number of
processes is refused by name."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from gloo import join, spawn
from ppo_helpers import runner, train_module, weights
from safetensors.torch import load_file, save_file

from agents import distributed
from agents.actor import GaussianActor
from agents.ppo.algorithm import PPO, Critic, PPOConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tiny_ppo() -> PPO:
    torch.manual_seed(0)
    return PPO(GaussianActor(5, 2, (8,)), Critic(4, (8,)), PPOConfig(hidden=(8,)), 1)


def _batch(n: int = 16) -> dict[str, torch.Tensor]:
    """A minibatch of ``n`` samples as ``RolloutStorage.minibatches`` yields them."""
    g = torch.Generator().manual_seed(1)
    r = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    return {
        "obs": r(n, 5),
        "critic_obs": r(n, 4),
        "actions": r(n, 2),
        "log_probs": r(n) - 2,
        "mu": r(n, 2) * 0.1,
        "sigma": torch.rand(n, 2, generator=g) + 0.5,
        "values": r(n),
        "advantages": r(n) * 3 + 1,
        "returns": r(n),
    }


def _gradient_worker(rank: int, port: int, out: str) -> None:
    join(rank, port)
    ppo = _tiny_ppo()
    half = {k: v[rank * 8 : (rank + 1) * 8] for k, v in _batch().items()}  # this rank's half
    parts = ppo.backward(half)
    grads = {str(i): p.grad for i, p in enumerate(ppo.params)}
    save_file({**grads, "kl": parts["kl"].reshape(1)}, os.path.join(out, f"grad{rank}.safetensors"))
    distributed.close()


def test_averaged_gradient_equals_one_process_gradient_on_the_combined_batch(tmp_path):
    spawn(_gradient_worker, str(tmp_path))
    ppo = _tiny_ppo()
    kl = ppo.backward(_batch())["kl"]
    whole = [p.grad.clone() for p in ppo.params]
    ppo.backward({k: v[:8] for k, v in _batch().items()})  # one rank's half alone: another gradient
    half = [p.grad.clone() for p in ppo.params]
    for rank in (0, 1):
        got = load_file(str(tmp_path / f"grad{rank}.safetensors"))
        for i, g in enumerate(whole):
            torch.testing.assert_close(got[str(i)], g, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got["kl"][0], kl)  # the learning rate is decided on the same KL
    assert not all(torch.allclose(h, g, atol=1e-4) for h, g in zip(half, whole, strict=True))


def _train_worker(rank: int, port: int, out: str) -> None:
    join(rank, port)
    tmp = Path(out) / "runs"
    total = 2 * 4 * 8 * 4  # 4 updates of 2 ranks x 4 worlds x 8 steps
    whole = runner(tmp, 7 + rank, total, name="whole")
    whole.learn(progress=False)
    cut = runner(tmp, 7 + rank, total, name="cut")
    cut.total_updates = 2  # stop halfway (and save), as Ctrl-C after two updates would
    cut.learn(progress=False)
    again = runner(tmp, 7 + rank, total, name="cut")
    again.load()
    assert again.iteration == 2 and again.env_steps == 2 * 2 * 4 * 8
    again.learn(progress=False)
    norm = torch.cat([whole.actor.norm.mean, whole.actor.norm.var, whole.critic.norm.mean])
    tensors = {"whole": weights(whole), "again": weights(again), "norm": norm, "obs": whole._obs[0].contiguous()}
    save_file(tensors, os.path.join(out, f"rank{rank}.safetensors"))
    distributed.close()


def test_two_ranks_keep_one_model_and_a_resumed_two_rank_run_ends_with_the_same_weights(tmp_path):
    spawn(_train_worker, str(tmp_path))
    r0, r1 = (load_file(str(tmp_path / f"rank{k}.safetensors")) for k in (0, 1))
    assert not torch.equal(r0["obs"], r1["obs"])  # each rank steps worlds of its own (seed + rank)
    assert torch.equal(r0["whole"], r1["whole"]) and torch.equal(r0["norm"], r1["norm"])
    assert torch.equal(r0["again"], r0["whole"]) and torch.equal(r1["again"], r1["whole"])
    # Rank 0 wrote the checkpoint, with rank 1's worlds beside its own.
    ckpt = tmp_path / "runs" / "cut" / "checkpoint"
    assert (ckpt / "train_state.rank1.safetensors").is_file()
    assert json.loads((ckpt / "train_state.json").read_text())["world_size"] == 2
    # A single process with rank 0's seed and worlds learns something else: it sees half the data.
    alone = runner(tmp_path, 7, 4 * 8 * 4, name="alone")
    alone.learn(progress=False)
    assert alone.iteration == 4 and not torch.allclose(weights(alone), r0["whole"])


def _torchrun(*flags: str, check: bool = True) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node 2 scripts/train_teacher.py`` with tiny egopush-goal settings and
    ``flags``, as a user would run it (one thread per process)."""
    tiny = ["--env", "egopush-goal", "--num-envs", "2", "--eval-episodes", "0", "--ppo.steps-per-env", "8"]
    tiny += ["--ppo.hidden", "16", "16"]
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        + [os.path.join(ROOT, "scripts", "train_teacher.py"), *tiny, *flags],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    if check:
        assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_a_torchrun_run_records_its_world_size_and_refuses_a_resume_in_one_process(tmp_path):
    run = tmp_path / "t"
    out = _torchrun("--total-steps", "64", "--run-dir", str(run))
    assert out.stdout.count("done: 64 env-steps") == 1  # rank 0 alone reports
    assert json.loads((run / "config.json").read_text())["train"]["world_size"] == 2
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["env_steps"] for h in history] == [32, 64]  # both ranks' steps, one row per iteration
    train = train_module()
    cfg = train.TrainConfig(
        env="egopush-goal",
        num_envs=2,
        total_steps=128,
        eval_episodes=0,
        run_dir=run,
        resume=True,
        ppo=PPOConfig(steps_per_env=8, hidden=(16, 16)),
    )
    with pytest.raises(ValueError, match=r"differing: world_size: 2 -> 1 \(world_size: the processes torchrun"):
        train.train(cfg)
    # With the config's record gone, the checkpoint's own record still refuses it.
    saved = json.loads((run / "config.json").read_text())
    del saved["train"]["world_size"]
    (run / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="saved by world_size 2 processes, resumed by 1"):
        train.train(cfg)


@pytest.mark.slow
def test_a_two_rank_script_run_resumed_by_two_ends_as_one_never_stopped_and_one_process_run_is_refused(tmp_path):
    from agents.actor import GaussianActor

    _torchrun("--total-steps", "128", "--run-dir", str(tmp_path / "whole"))
    _torchrun("--total-steps", "64", "--run-dir", str(tmp_path / "cut"))
    _torchrun("--total-steps", "128", "--run-dir", str(tmp_path / "cut"), "--resume")
    a, b = (GaussianActor.load(tmp_path / n / "checkpoint")[0] for n in ("whole", "cut"))
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    # A run of one process is not resumed by two.
    train = train_module()
    one = train.TrainConfig(
        env="egopush-goal",
        num_envs=2,
        total_steps=64,
        eval_episodes=0,
        run_dir=tmp_path / "one",
        ppo=PPOConfig(steps_per_env=8, hidden=(16, 16)),
    )
    train.train(one)
    out = _torchrun("--total-steps", "128", "--run-dir", str(tmp_path / "one"), "--resume", check=False)
    assert out.returncode != 0 and "differing: world_size: 1 -> 2" in out.stdout + out.stderr
