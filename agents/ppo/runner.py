"""The PPO training loop: rollouts, updates, logging, checkpoints that resume exactly."""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

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
    run_logged,
    save_state_file,
    swap_in,
    write_metrics,
)

CKPT = "checkpoint"
RAW = "actor_raw"  # with ``actor_ema``: the actor that collects data, beside the averaged policy


class Runner:
    """Trains ``PPO`` on a ``LearnerEnv``; one run directory holds its logs and checkpoint.

    Args:
        learner: the learner's view of the env.
        cfg: PPO settings.
        total_steps: env-steps (learner slots x steps) to train for.
        seed: seeds the networks' initialisation, the action noise and the minibatch order.
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
        self.steps_per_update = cfg.steps_per_env * learner.num_slots
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
        term_sums: dict[str, float] = {}
        finished_returns: list[float] = []
        outcome: dict[str, list[float]] = {}
        fresh_outcome: list[float] = []
        self.storage.clear()
        for _ in range(self.cfg.steps_per_env):
            self.actor.norm.update(obs)
            self.critic.norm.update(critic_obs)
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
            for k, v in info["reward_terms"].items():
                term_sums[k] = term_sums.get(k, 0.0) + float(v[:, learner.learners].mean())
            self._ep_return += res["rewards"]
            done = res["dones"] > 0
            if done.any():
                finished_returns += self._ep_return[done].tolist()
                self._ep_return[done] = 0
                world_done = done.view(-1, learner.K)[:, 0]
                if "success" in info:
                    outcome.setdefault("success_rate", []).extend(info["success"][world_done].float().tolist())
                if "replayed" in info:  # failed-start replay: success over fresh starts, and the replays' share
                    rep = info["replayed"][world_done]
                    outcome.setdefault("replayed_share", []).extend(rep.float().tolist())
                    fresh = info["success"][world_done][~rep].float().tolist()
                    fresh_outcome.extend(fresh)
                if "score" in info:
                    sc = info["score"][world_done]
                    outcome.setdefault("win_rate", []).extend((sc[:, 0] > sc[:, 1]).float().tolist())
                    outcome.setdefault("loss_rate", []).extend((sc[:, 0] < sc[:, 1]).float().tolist())
                    pool = learner.opponent
                    if hasattr(pool, "record"):
                        pool.record(world_done.nonzero().flatten().cpu(), sc.cpu())
            obs, critic_obs = res["obs"], res["critic_obs"]
        self._obs = (obs, critic_obs)
        self.storage.compute_returns(ppo.value(critic_obs), self.cfg.gamma, self.cfg.lam)
        stats = {f"reward/{k}": v / self.cfg.steps_per_env for k, v in term_sums.items()}
        if finished_returns:
            stats["episode/return"] = sum(finished_returns) / len(finished_returns)
        for k, v in outcome.items():
            stats[f"episode/{k}"] = sum(v) / len(v)
        if fresh_outcome:
            stats["episode/success_rate_fresh"] = sum(fresh_outcome) / len(fresh_outcome)
        if outcome:
            stats["episode/count"] = float(len(next(iter(outcome.values()))))
        return stats

    def learn(self, progress: bool = True) -> list[dict[str, float]]:
        """Train until ``total_steps``; Ctrl-C or SIGTERM saves a checkpoint at the end of the
        iteration and raises ``KeyboardInterrupt``."""
        bar = tqdm(
            total=self.total_updates * self.steps_per_update,
            initial=self.env_steps,
            unit="step",
            desc=f"PPO {self.env_name}",
            disable=not progress,
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
                log(stats, head, self.env_steps, self.steps_per_update, ("episode/",))

        run_logged(self.run_dir, self.history, bar, body, self.save, self.iteration or None, self.save_every)
        return self.history

    # -- checkpoints ---------------------------------------------------------------------------------
    def save(self) -> Path:
        """Write ``run_dir/checkpoint`` atomically: the policy (loadable by ``--policy``; with
        ``actor_ema``, the averaged actor, and the raw one in ``actor_raw/``), and the training
        state (critic, optimiser, generators, env snapshot) for ``--resume``."""
        tmp = fresh_dir(self.run_dir, CKPT)
        counters = {"iteration": self.iteration, "env_steps": self.env_steps, "seed": self.seed}
        avg = self.ppo.actor_avg
        if avg is None:
            self.actor.save(tmp, self.env_name, self.env_config, **counters)
        else:  # the policy is the average; the actor that collects data goes beside it
            average_into(avg, self.actor, 1.0)  # the current normaliser, weights unchanged
            avg.save(tmp, self.env_name, self.env_config, actor_ema=self.cfg.actor_ema, **counters)
            self.actor.save(tmp / RAW, self.env_name, self.env_config, **counters)
        tensors: dict[str, torch.Tensor] = {f"critic/{k}": v for k, v in self.critic.state_dict().items()}
        tensors.update(optimizer_tensors(self.ppo.optimizer))
        tensors["rng/runner"] = self.generator.get_state()
        tensors["rng/torch"] = torch.get_rng_state()
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
        save_state_file(tmp / "train_state.safetensors", tensors)
        meta = {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "lr": self.ppo.lr,
            "updates": self.ppo.updates,
            "seed": self.seed,
            "history": self.history,
            "pool": pool_meta,
        }
        (tmp / "train_state.json").write_text(json.dumps(meta))
        return swap_in(tmp, self.run_dir / CKPT)

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
        """Continue from ``run_dir/checkpoint`` (or ``checkpoint.old`` if a save was cut short)."""
        path = existing(self.run_dir / CKPT)
        actor, _ = GaussianActor.load(path)
        if (path / RAW).is_dir():  # the policy is an average (``actor_ema``); the raw actor beside it
            self.ppo.actor_avg = actor.to(self.learner.env.device)
            actor, _ = GaussianActor.load(path / RAW)
        self.actor.load_state_dict(actor.state_dict())
        tensors = load_state_file(path / "train_state.safetensors")
        state = json.loads((path / "train_state.json").read_text())
        dev = self.learner.env.device
        self.critic.load_state_dict({k[7:]: v for k, v in tensors.items() if k.startswith("critic/")})
        load_optimizer(self.ppo.optimizer, tensors, dev)
        self.ppo.lr, self.ppo.updates = state["lr"], state["updates"]
        for g in self.ppo.optimizer.param_groups:
            g["lr"] = self.ppo.lr
        self.generator.set_state(tensors["rng/runner"])
        torch.set_rng_state(tensors["rng/torch"])
        opp = self.learner.opponent
        if state.get("pool") is not None and hasattr(opp, "load"):
            a = self.actor
            opp.load(
                {k[5:]: v for k, v in tensors.items() if k.startswith("pool/")},
                state["pool"],
                lambda: GaussianActor(a.obs_dim, a.act_dim, a.hidden, a.group).to(dev),
            )
        elif "rng/opponent" in tensors and isinstance(getattr(opp, "generator", None), torch.Generator):
            opp.generator.set_state(tensors["rng/opponent"])
        self.learner.env.restore({k[4:]: v for k, v in tensors.items() if k.startswith("env/")})
        obs = [tensors[f"obs/{i}"].to(dev) for i in range(2) if f"obs/{i}" in tensors]
        self._obs = (obs[0], obs[1]) if obs else None
        if self._obs is not None:
            # The opponent reads the env's current observation: derive it from the restored state.
            self.learner._obs = self.learner.env.observe()
        self._ep_return = tensors["ep_return"].to(dev)
        self.iteration, self.env_steps = state["iteration"], state["env_steps"]
        self.history = state["history"]
        write_metrics(self.run_dir, self.history)
