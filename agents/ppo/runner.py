"""The PPO training loop: rollouts, updates, logging, checkpoints that resume exactly; under torchrun,
every rank steps its own worlds and rank 0 logs and writes the checkpoint (``agents/distributed.py``)."""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from agents import distributed
from agents.actor import GaussianActor, widen
from agents.ppo.algorithm import PPO, Critic, PPOConfig, average_into
from agents.ppo.learner_env import LearnerEnv
from agents.ppo.storage import RolloutStorage
from agents.run_state import (
    IterationLog,
    existing,
    fresh_dir,
    load_optimizer,
    load_state_file,
    optimizer_tensors,
    rank_state_name,
    run_logged,
    run_quietly,
    save_state_file,
    swap_in,
    write_metrics,
)
from envs.io import signals_held

CKPT = "checkpoint"
RAW = "actor_raw"  # with ``actor_ema``: the actor that collects data, beside the averaged policy


class Runner:
    """Trains ``PPO`` on a ``LearnerEnv``; one run directory holds its logs and checkpoint.

    Args:
        learner: the learner's view of the env.
        cfg: PPO settings.
        total_steps: env-steps (learner slots x steps, over every rank) to train for.
        seed: seeds the networks' initialisation, the action noise and the minibatch order (under
            torchrun, this rank's: the base seed + its global rank; rank 0's weights are broadcast).
        run_dir: where ``checkpoint/``, ``metrics.jsonl`` and TensorBoard logs go.
        env_name, env_config: stored in the checkpoint (the policy's env).
        save_every: updates between checkpoints, so that a crash loses at most that many (0: save
            only at the end and on Ctrl-C or SIGTERM).
    """

    def __init__(
        self,
        learner: LearnerEnv,
        cfg: PPOConfig,
        total_steps: int,
        seed: int,
        run_dir: Path,
        env_name: str,
        env_config: dict[str, Any],
        save_every: int = 0,
    ) -> None:
        self.learner, self.cfg, self.seed = learner, cfg, seed
        self.save_every = save_every
        self.run_dir = Path(run_dir)
        self.env_name, self.env_config = env_name, env_config
        dev = learner.env.device
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.actor = GaussianActor(learner.obs_dim, learner.act_dim, cfg.hidden, learner.actor_group).to(dev)
            with torch.no_grad():
                self.actor.log_std.fill_(cfg.init_log_std)
            self.critic = Critic(learner.critic_dim, cfg.hidden).to(dev)
        self.world_size = distributed.world_size()
        self.steps_per_update = cfg.steps_per_env * learner.num_slots * self.world_size  # every rank's
        self.total_updates = max(1, math.ceil(total_steps / self.steps_per_update))
        self.ppo = PPO(self.actor, self.critic, cfg, self.total_updates)
        self.storage = RolloutStorage(
            cfg.steps_per_env, learner.num_slots, learner.obs_dim, learner.critic_dim, learner.act_dim, dev
        )
        self.generator = torch.Generator().manual_seed(seed)
        self.iteration = 0
        self.env_steps = 0
        self.history: list[dict[str, float]] = []
        self._obs: tuple[torch.Tensor, torch.Tensor] | None = None
        self._ep_return = torch.zeros(learner.num_slots, device=dev)

    # -- rollouts and updates ----------------------------------------------------------------------
    def rollout(self) -> dict[str, float]:
        learner, ppo = self.learner, self.ppo
        obs, critic_obs = self._obs if self._obs is not None else learner.reset(seed=self.seed)
        # Statistics accumulate on the device, (sum, count) each, and are read once per iteration:
        # no host sync per step (on a GPU every read of a value would wait for the step to finish).
        dev = self._ep_return.device
        acc: dict[str, torch.Tensor] = {}

        def add(name: str, values: torch.Tensor, mask: torch.Tensor) -> None:
            total = acc.setdefault(name, torch.zeros(2, dtype=torch.float64, device=dev))
            m = mask.to(torch.float64)
            total += torch.stack(((values.to(torch.float64) * m).sum(), m.sum()))

        self.storage.clear()
        for _ in range(self.cfg.steps_per_env):
            distributed.update_normaliser(self.actor.norm, obs)  # every rank's worlds: one normaliser
            distributed.update_normaliser(self.critic.norm, critic_obs)
            out = ppo.act(obs, critic_obs, self.generator)
            res = learner.step(out["actions"])
            bootstrap = torch.zeros_like(res["rewards"])
            if "final_critic_obs" in res:
                # A time limit is not the end of the task: the value of where it stopped counts.
                bootstrap = res["truncated"] * ppo.value(res["final_critic_obs"])
            self.storage.add(
                obs=obs,
                critic_obs=critic_obs,
                actions=out["actions"],
                log_probs=out["log_probs"],
                values=out["values"],
                mu=out["mu"],
                sigma=out["sigma"],
                rewards=res["rewards"],
                dones=res["dones"],
                bootstrap=bootstrap,
            )
            info = res["info"]
            every = torch.ones((), dtype=torch.bool, device=dev)
            for k, v in info["reward_terms"].items():
                add(f"reward/{k}", v[:, learner.learners].mean(), every)
            self._ep_return += res["rewards"]
            done = res["dones"] > 0
            add("episode/return", self._ep_return, done)
            self._ep_return.masked_fill_(done, 0.0)
            world_done = done.view(-1, learner.K)[:, 0]
            if "success" in info:
                add("episode/success_rate", info["success"].float(), world_done)
            if "replayed" in info:  # failed-start replay: success over fresh starts, and the replays' share
                rep = info["replayed"]
                add("episode/replayed_share", rep.float(), world_done)
                add("episode/success_rate_fresh", info["success"].float(), world_done & ~rep)
            if "score" in info:
                sc = info["score"]
                add("episode/win_rate", (sc[:, 0] > sc[:, 1]).float(), world_done)
                add("episode/loss_rate", (sc[:, 0] < sc[:, 1]).float(), world_done)
                pool = learner.opponent
                if hasattr(pool, "record") and world_done.any():  # self-play's pool: per-world outcomes
                    pool.record(world_done.nonzero().flatten().cpu(), sc[world_done].cpu())
            obs, critic_obs = res["obs"], res["critic_obs"]
        self._obs = (obs, critic_obs)
        self.storage.compute_returns(ppo.value(critic_obs), self.cfg.gamma, self.cfg.lam)
        # (sum, count) of each statistic, read once, summed over the ranks: every rank's episodes count.
        read = {k: tuple(v.tolist()) for k, v in acc.items()}
        sums = {k: (total, float(n)) for k, (total, n) in read.items() if n > 0}  # reward/: a mean per step
        sums = distributed.sum_stats(sums)
        stats = {k: s / c for k, (s, c) in sums.items()}
        not_outcomes = ("episode/return", "episode/success_rate_fresh")
        ended = [c for k, (_, c) in sums.items() if k.startswith("episode/") and k not in not_outcomes]
        if ended:  # the worlds whose episode ended (every outcome counts them all)
            stats["episode/count"] = ended[0]
        return stats

    def learn(self, progress: bool = True) -> list[dict[str, float]]:
        """Train until ``total_steps``; Ctrl-C or SIGTERM saves a checkpoint at the end of the
        iteration and raises ``KeyboardInterrupt``. Under torchrun every rank starts from rank 0's
        weights, and a stop asked of any rank stops them all at the end of the same iteration."""
        for module in (self.actor, self.critic, self.ppo.actor_avg):
            if module is not None:
                distributed.broadcast_module_(module)
        main = distributed.is_main()
        bar = tqdm(
            total=self.total_updates * self.steps_per_update,
            initial=self.env_steps,
            unit="step",
            desc=f"PPO {self.env_name}",
            disable=not (progress and main),
            unit_scale=True,
        )

        def body(log: IterationLog) -> None:
            while self.iteration < self.total_updates:
                start = time.perf_counter()
                stats = self.rollout()
                collect = time.perf_counter() - start
                stats.update({f"loss/{k}": v for k, v in self.ppo.update(self.storage, self.generator).items()})
                pool = self.learner.opponent
                if hasattr(pool, "maybe_snapshot"):
                    pool.maybe_snapshot(self.actor, self.iteration + 1)
                    stats.update({f"selfplay/score_vs_{k}": v for k, v in pool.table().items()})
                elapsed = time.perf_counter() - start
                self.iteration += 1
                self.env_steps += self.steps_per_update
                stats["perf/env_steps_per_s"] = self.steps_per_update / collect
                stats["perf/total_steps_per_s"] = self.steps_per_update / elapsed
                head = {"iteration": self.iteration, "env_steps": self.env_steps}
                if self.world_size == 1:
                    log(stats, head, self.env_steps, self.steps_per_update, ("episode/",))
                    continue
                # Every rank stops at the end of the same iteration: a stop asked of one before this
                # point stops all now; one asked after it waits for the next iteration's end.
                with signals_held():
                    if distributed.any_rank(log.stop.signum is not None) and log.stop.signum is None:
                        log.stop.signum = signal.SIGTERM
                    log(stats, head, self.env_steps, self.steps_per_update, ("episode/",))

        if main:
            run_logged(self.run_dir, self.history, bar, body, self.save, self.iteration or None, self.save_every)
        else:
            run_quietly(self.run_dir, self.history, body, self.save, self.save_every)
        return self.history

    # -- checkpoints ---------------------------------------------------------------------------------
    def save(self) -> Path:
        """Write ``run_dir/checkpoint`` atomically: the policy (loadable by ``--policy``; with
        ``actor_ema``, the averaged actor, and the raw one in ``actor_raw/``), and the training
        state (critic, optimiser, generators, env snapshot) for ``--resume``. Under torchrun every
        rank calls it: each sends its own state (worlds, generators, episode returns) to rank 0, which
        writes them all (rank k's in ``train_state.rank<k>.*``) into the directory it swaps in."""
        avg = self.ppo.actor_avg
        if avg is not None:
            average_into(avg, self.actor, 1.0)  # the current normaliser, weights unchanged
        ranks = distributed.gather_to_main(self._own_state())
        if ranks is None:  # not rank 0: it writes; every rank returns once the checkpoint is in place
            distributed.barrier()
            return self.run_dir / CKPT
        tmp = fresh_dir(self.run_dir, CKPT)
        counters = {"iteration": self.iteration, "env_steps": self.env_steps, "seed": self.seed}
        if avg is None:
            self.actor.save(tmp, self.env_name, self.env_config, **counters)
        else:  # the policy is the average; the actor that collects data goes beside it
            avg.save(tmp, self.env_name, self.env_config, actor_ema=self.cfg.actor_ema, **counters)
            self.actor.save(tmp / RAW, self.env_name, self.env_config, **counters)
        tensors: dict[str, torch.Tensor] = {f"critic/{k}": v for k, v in self.critic.state_dict().items()}
        tensors.update(optimizer_tensors(self.ppo.optimizer))
        own, own_meta = ranks[0]
        tensors.update(own)
        save_state_file(tmp / "train_state.safetensors", tensors)
        meta = {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "lr": self.ppo.lr,
            "updates": self.ppo.updates,
            "seed": self.seed,
            "history": self.history,
            **own_meta,
        }
        if self.world_size > 1:
            meta["world_size"] = self.world_size
        (tmp / "train_state.json").write_text(json.dumps(meta))
        for k, (rank_tensors, rank_meta) in enumerate(ranks[1:], start=1):
            save_state_file(tmp / f"{rank_state_name(k)}.safetensors", rank_tensors)
            (tmp / f"{rank_state_name(k)}.json").write_text(json.dumps(rank_meta))
        final = swap_in(tmp, self.run_dir / CKPT)
        distributed.barrier()
        return final

    def _own_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """This rank's own part of the training state: generators, opponents, its worlds' snapshot,
        the current observations and episode returns (tensors on the CPU), and the opponent pool's
        metadata."""
        tensors = {"rng/runner": self.generator.get_state(), "rng/torch": torch.get_rng_state()}
        opp = self.learner.opponent
        pool_meta = None
        if hasattr(opp, "state"):
            pool_tensors, pool_meta = opp.state()
            tensors.update({f"pool/{k}": v for k, v in pool_tensors.items()})
        elif isinstance(getattr(opp, "generator", None), torch.Generator):
            tensors["rng/opponent"] = opp.generator.get_state()
        tensors.update({f"env/{k}": v for k, v in self.learner.env.snapshot().items()})
        tensors.update({f"obs/{i}": t for i, t in enumerate(self._obs or ())})
        tensors["ep_return"] = self._ep_return
        return {k: v.detach().cpu() for k, v in tensors.items()}, {"pool": pool_meta}

    def init_from(self, path: str | Path, std: float | None = None) -> tuple[dict[str, Any], bool]:
        """Start from another run's weights (a warm start, e.g. an observability curriculum):
        the actor and its normaliser, and the critic when ``path`` holds a training state; ``std``
        resets the actor's action standard deviation; inputs this run's observability appends (see
        ``GaussianActor.widened``) start with zero weight. Optimiser, generators and counters start
        fresh. Returns the source checkpoint's metadata, and whether its critic was loaded (a
        shipped checkpoint holds no training state: the critic then starts fresh)."""
        from agents.checkpoint import CheckpointError

        actor, meta = GaussianActor.load(path)
        if meta["env"] != self.env_name:
            raise CheckpointError(f"{path}: trained on {meta['env']!r}, not {self.env_name!r}")
        # A config whose groups append inputs (soccer ``fov``'s in-view flags, EgoPush's
        # ``room_keypoints``): zero weights there, for the actor and the critic.
        # And hidden layers wider than the source's (``--ppo.hidden``; as many of them): the new
        # units start with zero weight into the next layer (``agents.actor.widen``).
        appended = getattr(self.learner.env, "appended_dims", lambda *_: 0)
        extra = appended(actor.group, meta["env_config"])
        if actor.obs_dim + extra != self.actor.obs_dim:
            extra = 0
        if extra > 0 or actor.hidden != self.actor.hidden:
            with contextlib.suppress(ValueError):  # does not fit: the check below names what differs
                actor = actor.widened(extra, self.actor.hidden)
        mine = (self.actor.obs_dim, self.actor.act_dim, self.actor.hidden, self.actor.group)
        theirs = (actor.obs_dim, actor.act_dim, actor.hidden, actor.group)
        if mine != theirs:
            raise CheckpointError(f"{path}: its actor (obs, act, hidden, group) is {theirs}, this run's is {mine}")
        self.actor.load_state_dict(actor.state_dict())
        if std is not None:
            with torch.no_grad():
                self.actor.log_std.fill_(math.log(std))
        state = Path(path) / "train_state.safetensors"
        if not state.is_file():
            return meta, False
        critic = {k[7:]: v for k, v in load_state_file(state).items() if k.startswith("critic/")}
        extra = appended("critic", meta["env_config"])
        src_dim = critic["norm.mean"].shape[0] if "norm.mean" in critic else -1
        layers = sorted(int(k.split(".")[1]) for k in critic if k.startswith("net.") and k.endswith(".weight"))
        src_hidden = tuple(critic[f"net.{i}.weight"].shape[0] for i in layers[:-1])
        try:
            if src_dim + extra == self.critic.norm.mean.shape[0] and (extra > 0 or src_hidden != self.cfg.hidden):
                src = Critic(src_dim, src_hidden).to(self.learner.env.device)
                src.load_state_dict(critic)
                widen(src, self.critic, list(range(src_dim)))
            else:
                self.critic.load_state_dict(critic)
        except (RuntimeError, ValueError) as err:
            raise CheckpointError(f"{path}: its critic does not fit this run's: {err}") from err
        return meta, True

    def load(self) -> None:
        """Continue from ``run_dir/checkpoint`` (or ``checkpoint.old`` if a save was cut short); under
        torchrun every rank reads the shared state and its own (``train_state.rank<k>.*``)."""
        from agents.checkpoint import CheckpointError

        path = existing(self.run_dir / CKPT)
        actor, _ = GaussianActor.load(path)
        if (path / RAW).is_dir():  # the policy is an average (``actor_ema``); the raw actor beside it
            self.ppo.actor_avg = actor.to(self.learner.env.device)
            actor, _ = GaussianActor.load(path / RAW)
        self.actor.load_state_dict(actor.state_dict())
        tensors = load_state_file(path / "train_state.safetensors")
        state = json.loads((path / "train_state.json").read_text())
        saved_world = state.get("world_size", 1)
        if saved_world != self.world_size:
            raise CheckpointError(f"{path}: saved by world_size {saved_world} processes, resumed by {self.world_size}")
        own, own_meta = tensors, state
        rank = distributed.rank()
        if rank > 0:
            own = load_state_file(path / f"{rank_state_name(rank)}.safetensors")
            own_meta = json.loads((path / f"{rank_state_name(rank)}.json").read_text())
        dev = self.learner.env.device
        self.critic.load_state_dict({k[7:]: v for k, v in tensors.items() if k.startswith("critic/")})
        load_optimizer(self.ppo.optimizer, tensors, dev)
        self.ppo.lr, self.ppo.updates = state["lr"], state["updates"]
        for g in self.ppo.optimizer.param_groups:
            g["lr"] = self.ppo.lr
        self.generator.set_state(own["rng/runner"])
        torch.set_rng_state(own["rng/torch"])
        opp = self.learner.opponent
        if own_meta.get("pool") is not None and hasattr(opp, "load"):
            a = self.actor
            opp.load(
                {k[5:]: v for k, v in own.items() if k.startswith("pool/")},
                own_meta["pool"],
                lambda: GaussianActor(a.obs_dim, a.act_dim, a.hidden, a.group).to(dev),
            )
        elif "rng/opponent" in own and isinstance(getattr(opp, "generator", None), torch.Generator):
            opp.generator.set_state(own["rng/opponent"])
        self.learner.env.restore({k[4:]: v for k, v in own.items() if k.startswith("env/")})
        obs = [own[f"obs/{i}"].to(dev) for i in range(2) if f"obs/{i}" in own]
        self._obs = (obs[0], obs[1]) if obs else None
        if self._obs is not None:
            # The opponent reads the env's current observation: derive it from the restored state.
            self.learner._obs = self.learner.env.observe()
        self._ep_return = own["ep_return"].to(dev)
        self.iteration, self.env_steps = state["iteration"], state["env_steps"]
        self.history = state["history"]
        if distributed.is_main():
            write_metrics(self.run_dir, self.history)
