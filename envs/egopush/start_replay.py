"""Failed-start replay, a training curriculum for EgoPush: the starts of episodes that timed out come
round again, so that the starts a teacher does not yet solve are trained on more often.

Switched on for training only (``EgoPushEnv.replay_failed_starts``); evaluation and a checkpoint's
env use fresh starts."""

from __future__ import annotations

import torch

from envs.base import EnvPart


class FailedStartReplay(EnvPart):
    """A buffer of one start slot per world. Each episode that ends by timeout (the task not done)
    keeps its start in the buffer (a free slot, else a random one); each new episode begins from a
    start drawn from it with ``probability`` (a drawn start leaves the buffer; failing again puts it
    back). All draws come from the env's generator."""

    def __init__(self, probability: float, num_envs: int, nq: int, device: torch.device) -> None:
        if not 0.0 < probability <= 1.0:
            raise ValueError(f"failed-start replay is a probability in (0, 1], got {probability}")
        self.probability = probability
        self.start_qpos = torch.zeros(num_envs, nq, dtype=torch.float64, device=device)
        self.start_region = torch.zeros(num_envs, 2, device=device)
        self.failed_qpos = torch.zeros(num_envs, nq, dtype=torch.float64, device=device)
        self.failed_region = torch.zeros(num_envs, 2, device=device)
        self.failed_held = torch.zeros(num_envs, dtype=torch.bool, device=device)
        self.replayed = torch.zeros(num_envs, dtype=torch.bool, device=device)
        self.known = torch.zeros(num_envs, dtype=torch.bool, device=device)  # a start recorded since switched on

    def draw(
        self, ids: torch.Tensor, timed_out: torch.Tensor, qpos: torch.Tensor, region: torch.Tensor, g: torch.Generator
    ) -> torch.Tensor:
        """In place on the fresh starts ``qpos`` ``[k, nq]`` of worlds ``ids`` (``timed_out`` ``[k]``:
        whose episodes now end by timeout): keep the failed starts, draw replays, remember the starts.
        Returns the region centres ``[k, 2]`` (the goal task's marked region; the anchor otherwise)."""
        W, device = self.failed_held.shape[0], self.failed_held.device
        failed = ids[timed_out & self.known[ids]]
        if len(failed):
            score = torch.rand(W, generator=g).to(device) + 2.0 * (~self.failed_held).float()
            slots = score.topk(len(failed)).indices  # at most W: the worlds ending now
            self.failed_qpos[slots] = self.start_qpos[failed]
            self.failed_region[slots] = self.start_region[failed]
            self.failed_held[slots] = True
        want = (torch.rand(len(ids), generator=g) < self.probability).to(device)
        n = min(int(want.sum()), int(self.failed_held.sum()))
        replayed = torch.zeros(len(ids), dtype=torch.bool, device=device)
        if n:
            score = torch.rand(W, generator=g).to(device) + 2.0 * self.failed_held.float()
            slots = score.topk(n).indices
            rows = want.nonzero().flatten()[:n]
            qpos[rows] = self.failed_qpos[slots].to(qpos)
            region = region.clone()
            region[rows] = self.failed_region[slots]
            self.failed_held[slots] = False
            replayed[rows] = True
        self.replayed[ids] = replayed
        self.start_qpos[ids] = qpos.to(self.start_qpos)
        self.start_region[ids] = region
        self.known[ids] = True
        return region
