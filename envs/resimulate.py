"""A recording's states played back in its env: the env it was made in, a recorded state put back,
and a whole episode re-simulated from its first state and its actions (the format in
``envs.recording``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from envs.recording import Episode, Recording


def make_env(recording: Recording, num_envs: int = 1, **overrides: Any) -> Any:
    """The env a recording was made in (its name and resolved config), with ``overrides``."""
    from envs.registry import make

    config = {**recording.config, **overrides}
    return make(recording.env, num_envs=num_envs, **config)


def load_episode_state(env: Any, episode: Episode, t: int, world: int = 0) -> None:
    """Put world ``world`` of ``env`` in the recorded state before step ``t`` (its fields too)."""
    for key, value in episode.data.items():
        if key.startswith("fields/"):
            env.sim.field(key[len("fields/") :])[world] = torch.as_tensor(value).to(
                env.sim.field(key[len("fields/") :])
            )
    state = {
        k[len("state/") :]: torch.as_tensor(v[t : t + 1]) for k, v in episode.data.items() if k.startswith("state/")
    }
    env.sim.set_state([world], state)


def resimulate(env: Any, episode: Episode, world: int = 0) -> dict[str, np.ndarray]:
    """Replay an episode's actions from its first recorded state in world ``world`` of ``env``.

    Physics only: the recorded actions go to the controls and the sim steps. Where the task had
    rewritten the state inside a step (``teleported``, e.g. a kick-off after a goal) the
    recorded state is loaded again, as the task's own placement is not physics.

    Returns:
        The re-simulated states ``state/<field>`` ``[T + 1, n]``, to compare with the recording's.
    """
    load_episode_state(env, episode, 0, world)
    out: dict[str, list[np.ndarray]] = {}

    def keep() -> None:
        for f, v in env.sim.get_state().items():
            out.setdefault(f"state/{f}", []).append(v[world].cpu().numpy())

    keep()
    actions = torch.as_tensor(episode.data["actions"])
    for t in range(episode.length):
        full = torch.zeros(env.num_envs, *actions.shape[1:])
        full[world] = actions[t]
        env._apply_actions(full.to(env.device))
        env.sim.step()
        if episode.data["teleported"][t]:
            load_episode_state(env, episode, t + 1, world)
        keep()
    return {k: np.stack(v) for k, v in out.items()}
