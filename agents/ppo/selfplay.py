"""Self-play opponents: a pool of frozen snapshots of the learner plus fixed players.

Each world plays one opponent from the pool for a whole episode. When its episode ends the
world draws its next opponent with probability proportional to ``(1 - score) + floor``, where
``score`` is the learner's recent result against that opponent (win 1, draw 0.5, loss 0,
exponential average): opponents it does not yet beat come up more often, none ever vanishes
(prioritised fictitious self-play). A snapshot of the learner joins the pool every
``snapshot_every`` updates, the oldest snapshot leaving past ``max_snapshots``.

``fixed_share`` (default 0) keeps a floor on how often the fixed players (the scripted player, say)
are drawn: with probability ``fixed_share`` a world draws among the fixed players alone (by the
same weights), otherwise among the whole pool. Without it, snapshots that draw against the learner
outweigh a fixed player it already beats and take nearly every game, and the learner's play
against that fixed player drifts (see the README's soccer-2v2 results).
"""

from __future__ import annotations

import copy

import torch

from agents.policies import Policy

SNAPSHOT = "snapshot@"  # prefix of a snapshot's name in the pool; fixed players have other names


def is_snapshot(name: str) -> bool:
    return name.startswith(SNAPSHOT)


class OpponentPool:
    """The opponent policy of a ``LearnerEnv`` in self-play (a callable over ``[W, K', ...]`` groups)."""

    def __init__(
        self,
        num_envs: int,
        fixed: dict[str, Policy],
        snapshot_every: int = 10,
        max_snapshots: int = 8,
        floor: float = 0.1,
        smoothing: float = 0.05,
        seed: int = 0,
        fixed_share: float = 0.0,
    ) -> None:
        if not fixed:
            raise ValueError("the pool needs at least one fixed opponent (e.g. the scripted player)")
        if not 0.0 <= fixed_share <= 1.0:
            raise ValueError(f"fixed_share is a probability in [0, 1], got {fixed_share}")
        self.fixed_share = fixed_share
        self.names: list[str] = list(fixed)
        self.policies: list[Policy] = list(fixed.values())
        self.score = [0.0] * len(self.names)  # start pessimistic: every opponent looks unbeaten
        self.games = [0] * len(self.names)
        self.snapshot_every, self.max_snapshots = snapshot_every, max_snapshots
        self.floor, self.smoothing = floor, smoothing
        self.generator = torch.Generator().manual_seed(seed)
        self.assignment = torch.zeros(num_envs, dtype=torch.long)
        self.resample(torch.arange(num_envs))

    def weights(self) -> torch.Tensor:
        return torch.tensor([(1 - s) + self.floor for s in self.score])

    def probabilities(self) -> torch.Tensor:
        """Probability that a world draws each opponent next (weights, then the fixed players' floor)."""
        w = self.weights()
        p = w / w.sum()
        if self.fixed_share > 0:
            fixed = torch.tensor([not is_snapshot(n) for n in self.names])
            wf = torch.where(fixed, w, torch.zeros_like(w))
            p = self.fixed_share * wf / wf.sum() + (1 - self.fixed_share) * p
        return p

    def resample(self, worlds: torch.Tensor) -> None:
        self.assignment[worlds] = torch.multinomial(
            self.probabilities(), len(worlds), replacement=True, generator=self.generator
        )

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        ref = next(iter(obs.values()))
        out: torch.Tensor | None = None
        for i in self.assignment.unique().tolist():
            worlds = (self.assignment == i).nonzero().flatten().to(ref.device)
            act = self.policies[i]({k: v[worlds] for k, v in obs.items()})
            if out is None:
                out = torch.zeros(ref.shape[0], ref.shape[1], act.shape[-1], device=ref.device)
            out[worlds] = act.to(out)
        assert out is not None
        return out

    def record(self, worlds: torch.Tensor, score: torch.Tensor) -> None:
        """Results of finished episodes: ``score`` ``[n, 2]`` (learner first), then new opponents."""
        for w, (mine, theirs) in zip(worlds.tolist(), score.tolist(), strict=True):
            i = int(self.assignment[w])
            result = 1.0 if mine > theirs else 0.5 if mine == theirs else 0.0
            self.score[i] += self.smoothing * (result - self.score[i]) if self.games[i] else result - self.score[i]
            self.games[i] += 1
        self.resample(worlds.cpu())

    def maybe_snapshot(self, actor: torch.nn.Module, update: int) -> bool:
        """Freeze a copy of ``actor`` into the pool every ``snapshot_every`` updates."""
        if self.snapshot_every <= 0 or update % self.snapshot_every:
            return False
        frozen = copy.deepcopy(actor).eval()
        for p in frozen.parameters():
            p.requires_grad_(False)
        snaps = [i for i, n in enumerate(self.names) if is_snapshot(n)]
        if len(snaps) >= self.max_snapshots:
            old = snaps[0]
            for lst in (self.names, self.policies, self.score, self.games):
                del lst[old]
            self.assignment[self.assignment == old] = 0
            self.assignment[self.assignment > old] -= 1
        self.names.append(f"{SNAPSHOT}{update}")
        self.policies.append(frozen)
        self.score.append(0.0)
        self.games.append(0)
        return True

    def table(self) -> dict[str, float]:
        """Recent score (win 1, draw 0.5) against each opponent that has been played."""
        return {n: s for n, s, g in zip(self.names, self.score, self.games, strict=True) if g}

    # -- checkpointing -----------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """(tensors, JSON-able metadata) that ``load`` turns back into this pool."""
        tensors = {"generator": self.generator.get_state(), "assignment": self.assignment.clone()}
        for name, policy in zip(self.names, self.policies, strict=True):
            if is_snapshot(name):
                tensors.update({f"{name}/{k}": v for k, v in policy.state_dict().items()})
        return tensors, {"names": self.names, "score": self.score, "games": self.games}

    def load(self, tensors: dict[str, torch.Tensor], meta: dict, make_actor) -> None:  # noqa: ANN001
        """Restore ``state()``; ``make_actor()`` builds an empty actor for each snapshot."""
        fixed = {n: p for n, p in zip(self.names, self.policies, strict=True) if not is_snapshot(n)}
        self.names, self.policies = [], []
        for name in meta["names"]:
            if is_snapshot(name):
                actor = make_actor()
                actor.load_state_dict({k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(name + "/")})
                actor.eval()
                self.policies.append(actor)
            else:
                self.policies.append(fixed[name])
            self.names.append(name)
        self.score, self.games = list(meta["score"]), list(meta["games"])
        self.generator.set_state(tensors["generator"])
        self.assignment = tensors["assignment"].clone()
