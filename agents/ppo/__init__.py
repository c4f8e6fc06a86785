"""PPO on the batched env contract: the math (``algorithm``), rollout storage (``storage``),
the learner's view of a multi-agent env (``learner_env``) and the loop (``runner``)."""
