"""A generative multi-agent world model: every player's egocentric video, generated jointly from
every player's actions (in the manner of gamma-World), and a block-causal student that rolls it
out from a KV cache.

- ``positions``: 4-D rotary (time, agent, h, w) with the Simplex Rotary Agent Encoding;
- ``attention``: Sparse Hub Attention and the dense cross-agent baseline, full or cached;
- ``tokenizer``: the convolutional autoencoder between frames and latent grids;
- ``teacher``: the bidirectional flow-matching transformer over latent tokens;
- ``student``: the block-causal student (Diffusion Forcing, few-step cached sampling).
"""
