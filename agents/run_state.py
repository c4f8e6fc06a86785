"""Pieces every training runner shares: the atomic checkpoint-directory swap, optimiser state as
safetensors tensors, the per-iteration log (TensorBoard, ``metrics.jsonl``, progress bar), and
stopping at the end of an iteration on Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from agents.checkpoint import CheckpointError
from envs.io import signals_held

STATE_DIGEST = "egoteach_sha256"
"""The key, in a training-state file's safetensors metadata, of the digest of its tensors."""


def fresh_dir(run_dir: Path, name: str) -> Path:
    """An empty ``run_dir/<name>.tmp`` to write a checkpoint into before ``swap_in``."""
    tmp = run_dir / (name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def swap_in(tmp: Path, final: Path) -> Path:
    """Replace directory ``final`` by ``tmp`` so that a crash leaves one or the other, whole:
    the old one is moved to ``<final>.old`` first (which ``existing`` falls back to)."""
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def existing(final: Path) -> Path:
    """``final``, or ``<final>.old`` where a save was cut short between its two renames."""
    old = final.with_name(final.name + ".old")
    return old if not final.exists() and old.exists() else final


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of tensors (names, dtypes, shapes and bytes, in name order): a flipped byte changes it."""
    sha = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        sha.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        sha.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()


def save_state_file(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write a training-state safetensors file with the digest of its tensors in its metadata
    (checked by ``load_state_file``), through a temporary file and a rename."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={STATE_DIGEST: tensors_digest(tensors)})
    os.replace(tmp, path)


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a training-state file, or a ``CheckpointError`` naming it: unreadable
    (truncated, not safetensors) or not matching its digest (corrupted). A file written before
    digests existed is read as it is, with a warning."""
    try:
        with safe_open(str(path), "pt") as f:
            digest = (f.metadata() or {}).get(STATE_DIGEST)
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (a reader, not a dict)
    except (OSError, ValueError, SafetensorError) as err:
        raise CheckpointError(f"{path} cannot be read as a training state: {err}") from None
    if digest is None:
        print(f"note: {path} carries no digest (written by an older egoteach): read unchecked")
    elif digest != tensors_digest(tensors):
        raise CheckpointError(f"{path} does not match its digest (corrupted, or edited after it was saved)")
    return tensors


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """An optimiser's per-parameter state as flat tensors ``optim/<param id>/<name>``."""
    out: dict[str, torch.Tensor] = {}
    for pid, st in optimizer.state_dict()["state"].items():
        for k, v in st.items():
            out[f"optim/{pid}/{k}"] = v if isinstance(v, torch.Tensor) else torch.tensor(v)
    return out


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], device: Any) -> None:
    """Inverse of ``optimizer_tensors`` (other keys in ``tensors`` are ignored)."""
    opt = optimizer.state_dict()
    for key, v in tensors.items():
        if key.startswith("optim/"):
            _, pid, name = key.split("/")
            opt["state"].setdefault(int(pid), {})[name] = v.to(device) if name != "step" else v
    optimizer.load_state_dict(opt)


def write_metrics(run_dir: Path, history: list[dict[str, float]]) -> None:
    """Rewrite ``run_dir/metrics.jsonl`` from a checkpoint's history (atomically): on resume, the rows
    logged after that checkpoint (before a crash) would otherwise be there twice."""
    tmp = run_dir / "metrics.jsonl.tmp"
    tmp.write_text("".join(json.dumps(h) + "\n" for h in history))
    os.replace(tmp, run_dir / "metrics.jsonl")


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    """The rows of ``run_dir/metrics.jsonl``, one per logged iteration."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no metrics.jsonl (expected a train_teacher.py or distill_student.py run)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def episode_count(h: dict[str, float], key: str) -> float:
    """The episodes behind the per-episode rate ``key`` in one logged iteration ``h``: those that
    finished (``episode/count``), and of them only the fresh starts for a ``*_fresh`` rate (a run with
    failed-start replay logs the replays' share, ``episode/replayed_share``)."""
    n = h.get("episode/count", 1.0)
    if key.endswith("_fresh"):
        n *= 1.0 - h.get("episode/replayed_share", 0.0)
    return n


def episode_rate(
    history: list[dict[str, float]], key: str, x_key: str, episodes: int = 100
) -> tuple[list[float], list[float]]:
    """A per-episode mean (``episode/success_rate``, ``episode/win_rate``, ``episode/return``) over the
    last ~``episodes`` finished episodes at each logged iteration: the iterations' rates weighted by the episodes each
    finished (``episode/count``), so an iteration where one short, successful episode ended does not
    read as a 100% spike. Returns the ``x_key`` values (env-steps, frames) and the rates."""
    xs: list[float] = []
    ys: list[float] = []
    window: list[tuple[float, float]] = []
    for h in history:
        if key not in h:
            continue
        window.append((h[key], episode_count(h, key)))
        while sum(c for _, c in window) - window[0][1] >= episodes:
            window.pop(0)
        xs.append(h[x_key])
        ys.append(sum(v * c for v, c in window) / sum(c for _, c in window))
    return xs, ys


def no_episode_note(history: list[dict[str, float]], x_key: str, unit: str) -> str:
    """What a learning curve says in place of a curve when no episode finished in the whole run."""
    reached = history[-1].get(x_key, 0) if history else 0
    return (
        f"no episode finished in {reached:,.0f} {unit}: no per-episode rate to draw\n"
        "(train for longer than one episode, or shorten the episodes)"
    )


class StopAtIterationEnd(KeyboardInterrupt):
    """Raised once an iteration is logged after a first Ctrl-C or SIGTERM: the state is one whole
    iteration, and the runner saves it."""


class StopNow(KeyboardInterrupt):
    """Raised by a second Ctrl-C or SIGTERM, wherever the run was: the state may be part of an
    iteration, so nothing is saved from it; the last checkpoint stays as it was."""


def _save_held(save: Callable[[], Any]) -> Any:
    with signals_held():
        return save()


class StopRequest:
    """Set by the first Ctrl-C or SIGTERM while ``stop_at_iteration_end`` is active."""

    def __init__(self) -> None:
        self.signum: int | None = None


@contextlib.contextmanager
def stop_at_iteration_end() -> Iterator[StopRequest]:
    """Within the block, the first Ctrl-C or SIGTERM (``kill PID``, a batch scheduler's stop,
    ``docker stop``) only records a stop request, which ``IterationLog`` turns into
    ``KeyboardInterrupt`` once the iteration is logged: the checkpoint then holds a whole iteration
    (weights, counters, optimiser and generator state agree), so a resumed run ends as one never
    stopped. A second signal raises ``KeyboardInterrupt`` at once. SIGINT is left alone where it is
    ignored (a background job of a script) or handled by someone else; the previous handlers are
    restored after. Outside the main thread (no signal handlers there) it records nothing."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum: int, frame: Any) -> None:
        if request.signum is not None:
            raise StopNow
        request.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping at the end of this iteration (again: stop now)", flush=True)

    wanted = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        wanted.append(signal.SIGINT)
    previous = {s: signal.signal(s, handler) for s in wanted}
    try:
        yield request
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class IterationLog:
    """Log one iteration's stats: TensorBoard scalars at ``x``, a row of ``metrics.jsonl`` (kept in
    ``history``), and the progress bar's postfix (keys starting with ``shown``) and advance; then,
    if a stop was requested during the iteration, raise ``KeyboardInterrupt``, or else call ``save``
    when ``head["iteration"]`` is a multiple of ``save_every`` (so a crash loses at most that many)."""

    def __init__(
        self,
        run_dir: Path,
        history: list[dict[str, float]],
        writer: Any,
        bar: Any,
        stop: StopRequest | None = None,
        save: Callable[[], Any] | None = None,
        save_every: int = 0,
    ) -> None:
        self.run_dir, self.history, self.writer, self.bar = run_dir, history, writer, bar
        self.stop = stop or StopRequest()
        self.save, self.save_every = save, save_every

    def __call__(
        self, stats: dict[str, float], head: dict[str, float], x: int, advance: int, shown: tuple[str, ...]
    ) -> None:
        for k, v in stats.items():
            self.writer.add_scalar(k, v, x)
        self.history.append({**head, **stats})
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(self.history[-1]) + "\n")
        self.bar.set_postfix({k.split("/")[-1]: round(v, 3) for k, v in stats.items() if k.startswith(shown)}, False)
        self.bar.update(advance)
        if self.stop.signum is not None:
            raise StopAtIterationEnd
        if self.save is not None and self.save_every > 0 and int(head.get("iteration", 0)) % self.save_every == 0:
            self.save()


class TensorBoard:
    """A TensorBoard ``SummaryWriter`` in ``log_dir``, opened at the first scalar. On a resumed run it
    opens with ``purge_step`` at that scalar's x, in whatever unit the scalars are keyed by (env-steps,
    frames): TensorBoard then drops what the stopped run logged past its checkpoint, and keeps the
    curve up to it."""

    def __init__(self, log_dir: Path, resumed: bool) -> None:
        self.log_dir, self.resumed = log_dir, resumed
        self._writer: Any = None

    def add_scalar(self, tag: str, value: float, x: int) -> None:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.log_dir), purge_step=x if self.resumed else None)
        self._writer.add_scalar(tag, value, x)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def run_logged(
    run_dir: Path,
    history: list[dict[str, float]],
    bar: Any,
    body: Callable[[IterationLog], None],
    save: Callable[[], Any],
    resumed: int | bool | None = None,
    save_every: int = 0,
) -> None:
    """Run ``body(log)`` with a TensorBoard writer in ``run_dir/tb``; Ctrl-C or SIGTERM stops it at
    the end of the iteration (see ``stop_at_iteration_end``), calls ``save`` and raises
    ``StopAtIterationEnd`` (a ``KeyboardInterrupt``); a second signal, or any other error, raises
    with nothing saved from the iteration it broke into (the last checkpoint stays whole). The writer
    and bar are closed in any case; ``save`` runs at the end and every ``save_every`` iterations
    (0: never between), each time with Ctrl-C and SIGTERM held until it is done (``signals_held``).
    ``resumed``: true (the callers pass the
    iteration resumed from) when the run continues from a checkpoint (see ``TensorBoard``)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    writer = TensorBoard(run_dir / "tb", bool(resumed))
    whole = functools.partial(_save_held, save)
    try:
        _until_stopped(body, lambda stop: IterationLog(run_dir, history, writer, bar, stop, whole, save_every), whole)
    finally:
        bar.close()
        writer.close()
    whole()


def _until_stopped(
    body: Callable[[IterationLog], None], log_for: Callable[[Any], IterationLog], whole: Callable[[], None]
) -> None:
    """Run ``body`` with the log ``log_for(stop)`` until it returns or a signal stops it at an
    iteration's end; then save (``whole``) and raise ``StopAtIterationEnd``."""
    try:
        with stop_at_iteration_end() as stop:
            body(log_for(stop))
    except StopAtIterationEnd:
        whole()
        raise


def interrupted_note(err: KeyboardInterrupt, checkpoint: Path) -> str:
    """What a trainer prints when a signal stopped it: saved at the iteration's end, or stopped at
    once with the last whole checkpoint kept."""
    if isinstance(err, StopAtIterationEnd):
        return f"interrupted: checkpoint saved in {checkpoint}; continue with --resume"
    kept = "the last whole checkpoint is kept" if existing(checkpoint).exists() else "no checkpoint had been saved yet"
    return f"stopped at once: nothing of the iteration in progress was saved; {kept} ({checkpoint})"


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix[:-1]: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}."))
    return out


def differing_settings(run_dir: Path, differ: list[str]) -> str:
    """The message refusing to resume ``run_dir`` with the settings ``differ`` changed (from
    ``resume_differences``), with a word on ``world_size`` when the number of processes changed."""
    torchrun = any(d.startswith("world_size:") for d in differ)
    why = " (world_size: the processes torchrun starts)" if torchrun else ""
    return f"{run_dir} was trained with other settings; differing: " + "; ".join(differ) + why


def resume_differences(saved: dict[str, Any], now: dict[str, Any], free: tuple[str, ...] = ()) -> list[str]:
    """The settings in which a run resumed with ``now`` would differ from its saved config ``saved``
    (both plain JSON-like dicts, nested allowed), as ``"name: saved -> now"``; ``free`` names the
    top-level ones a resumed run may change (its budget, where it logs, how often it saves), and a
    setting missing from ``saved`` (added to the code after the run was saved) is not compared."""
    a, b = _flat(json.loads(json.dumps(saved, default=str))), _flat(json.loads(json.dumps(now, default=str)))
    # A setting the saved config lacks did not exist when the run was saved: not compared.
    keys = [k for k in sorted(set(a) | set(b)) if k.split(".")[0] not in free and k in a]
    return [f"{k}: {a.get(k, '(unset)')} -> {b.get(k, '(unset)')}" for k in keys if a.get(k) != b.get(k)]


def rank_state_name(rank: int) -> str:
    """The checkpoint's file of rank ``rank``'s own state (its worlds, generators, episode returns);
    rank 0's is in ``train_state.safetensors`` with the shared state, as a single process's is."""
    return f"train_state.rank{rank}"


class QuietLog(IterationLog):
    """The iteration log of a rank other than 0: it keeps the history, stops when asked and saves on
    the same iterations as rank 0 (the save is collective), and writes nothing."""

    def __call__(
        self, stats: dict[str, float], head: dict[str, float], x: int, advance: int, shown: tuple[str, ...]
    ) -> None:
        self.history.append({**head, **stats})
        if self.stop.signum is not None:
            raise StopAtIterationEnd
        if self.save is not None and self.save_every > 0 and int(head.get("iteration", 0)) % self.save_every == 0:
            self.save()


def run_quietly(
    run_dir: Path,
    history: list[dict[str, float]],
    body: Callable[[IterationLog], None],
    save: Callable[[], Any],
    save_every: int = 0,
) -> None:
    """``run_logged`` for a rank other than 0 under torchrun: the same saves (they are collective)
    and stops, with Ctrl-C and SIGTERM held during each save, and no logs."""
    whole = functools.partial(_save_held, save)
    _until_stopped(body, lambda stop: QuietLog(run_dir, history, None, None, stop, whole, save_every), whole)
    whole()
