"""CoFlow policy checkpoints (kind ``coflow``): the model's weights in safetensors and its config,
sizes, data scale and env in the JSON beside them (``agents/checkpoint.py``), and the loader that
``make_policy`` calls for them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from agents import checkpoint
from agents.coflow.config import CoFlowConfig
from agents.coflow.policy import CoFlowModel, CoFlowPolicy

KIND = "coflow"
SCHEMA = {
    "env": checkpoint.TEXT,
    "env_config": checkpoint.FIELDS,
    "obs_group": checkpoint.TEXT,
    "obs_dim": checkpoint.integer(1, 100_000),
    "act_dim": checkpoint.integer(1, 1024),
    "n_agents": checkpoint.integer(1, 64),
    "coflow": checkpoint.FIELDS,
}
"""What a CoFlow checkpoint's metadata must hold, checked before the model is built."""


def save_model(
    path: str | Path,
    model: CoFlowModel,
    env_name: str,
    env_config: dict[str, Any],
    return_scale: float,
    return_offset: float = 0.0,
    obs_group: str = "privileged",
    **extra: Any,
) -> Path:
    """Write ``model`` as a policy checkpoint (atomically); ``extra`` goes into the JSON as given."""
    meta = {
        "kind": KIND,
        "env": env_name,
        "env_config": env_config,
        "obs_group": obs_group,
        "obs_dim": model.obs_dim,
        "act_dim": model.act_dim,
        "n_agents": model.n_agents,
        "return_scale": return_scale,
        "return_offset": return_offset,
        "coflow": dataclasses.asdict(model.cfg),
        **extra,
    }
    return checkpoint.save(path, model.state_dict(), meta)


def load_model(path: str | Path, **overrides: Any) -> tuple[CoFlowModel, dict[str, Any]]:
    """The model of a ``coflow`` checkpoint and its metadata; ``overrides`` change inference-time
    config fields (``steps``, ``guidance``, ``alpha``, ``target_return``)."""
    tensors, meta = checkpoint.load(path, KIND)
    checkpoint.check_meta(meta, path, SCHEMA)
    fields = {**meta["coflow"], **overrides}
    try:
        fields["dim_mults"] = tuple(fields["dim_mults"])
        cfg = CoFlowConfig(**fields)
    except (TypeError, ValueError) as err:
        raise checkpoint.CheckpointError(f"{path}: config does not build a CoFlow model: {err}") from err
    model = CoFlowModel(cfg, meta["obs_dim"], meta["act_dim"], meta["n_agents"])
    checkpoint.fill(model, tensors, path)
    return model, meta


def load_coflow_policy(path: Path, env: Any) -> CoFlowPolicy:
    """The registered loader: a ``coflow`` checkpoint's policy, checked against ``env``."""
    model, meta = load_model(path)
    checkpoint.check_env(meta, path, env)
    space = env.observation_spaces.get(meta["obs_group"])
    if space is None or space.shape != (meta["obs_dim"],):
        got = None if space is None else space.shape
        raise checkpoint.CheckpointError(f"{path} reads {meta['obs_group']!r} of size {meta['obs_dim']}; env has {got}")
    if env.act_dim != meta["act_dim"]:
        raise checkpoint.CheckpointError(
            f"{path} acts with {meta['act_dim']} dims; env {env.name!r} takes {env.act_dim}"
        )
    return CoFlowPolicy(model, meta["obs_group"])
