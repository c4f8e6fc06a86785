"""A generative multi-agent world model: every player's egocentric video, generated jointly from
every player's actions (in the manner of gamma-World), and a block-causal student that rolls it
out from a KV cache.

- ``positions``: 4-D rotary (time, agent, h, w) with the Simplex Rotary Agent Encoding;
- ``attention``: Sparse Hub Attention and the dense cross-agent baseline, full or cached;
- ``tokenizer``: the convolutional autoencoder between frames and latent grids;
- ``teacher``: the shared transformer and the bidirectional flow-matching teacher;
- ``student``: the block-causal student (Diffusion Forcing, few-step cached sampling);
- ``data``: clips of every player's camera and actions from recordings;
- ``train``: the three training stages (run dir, checkpoints, resume);
- ``dream``: ``DreamEnv``, the student behind the batched env contract.
"""

from distill.world_model.dream import DreamEnv

__all__ = ["DreamEnv"]
