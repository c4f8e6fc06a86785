"""After ``--resume``, TensorBoard keeps the curve up to the checkpoint and drops only what the stopped
run logged past it, in the env-steps the scalars are keyed by (issue 51, item 16)."""

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tqdm import tqdm

from agents.run_state import run_logged


def _run(run_dir, history, xs, values, resumed=None):
    def body(log):
        for x, v in zip(xs, values, strict=True):
            log({"loss/value": v}, {"iteration": len(history) + 1, "env_steps": x}, x, 1, ())

    run_logged(run_dir, history, tqdm(disable=True), body, lambda: None, resumed)


def test_resumed_run_purges_tensorboard_past_the_checkpoint_in_env_steps(tmp_path):
    history = []
    _run(tmp_path, history, [4096, 8192, 12288], [1.0, 2.0, 3.0])  # checkpoint at 8192, then a crash
    resumed_history = history[:2]
    _run(tmp_path, resumed_history, [12288, 16384], [30.0, 40.0], resumed=2)  # resumed at iteration 2
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    got = [(e.step, e.value) for e in events.Scalars("loss/value")]
    assert got == [(4096, 1.0), (8192, 2.0), (12288, 30.0), (16384, 40.0)]
