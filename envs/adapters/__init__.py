"""PettingZoo, Stable-Baselines3 and Gymnasium views of the batched env contract."""
