"""hookforge-ppo: reinforcement learning with PPO on gymnasium environments.

- ``gym`` (data source): any registered gymnasium environment, vectorised, seeded per env;
- ``actor_critic`` (model): MLP or CNN policy and value networks;
- ``ppo`` (loop): the PPO algorithm, one ``run.end_epoch`` per iteration;
- ``episodes`` (evaluator): returns, lengths and success rate over evaluation episodes.

:mod:`hookforge_ppo.ppo` holds the algorithm's core (GAE, the clipped losses, minibatches,
schedules), independent of where observations come from, for the language-model PPO to reuse.
Component modules import torch and gymnasium inside functions only.
"""
