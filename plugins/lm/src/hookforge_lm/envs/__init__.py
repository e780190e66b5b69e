"""Multi-turn text environments for language-model policies, registered with gymnasium.

A text environment is an ordinary gymnasium environment whose observation and action spaces
are :class:`gymnasium.spaces.Text`: ``reset`` gives the first observation as text, ``step``
takes the policy's reply as text and gives the next observation, a reward (per step and on
completion), and ``terminated``/``truncated`` as usual. Two optional parts are used where they
exist: ``info["is_success"]`` when an episode ends, and an ``expert_action()`` method (found
through the wrappers with ``get_wrapper_attr``) that names what an expert would say next, from
which the ``text_env`` data source writes demonstrations for supervised fine-tuning.

Registered here (importing this package registers them, once):

- ``hookforge/TextShop-v0``: a generated shopping task (:mod:`hookforge_lm.envs.shop`);
- ``hookforge/BabyAIText-v0``: any MiniGrid/BabyAI environment described in words, with
  words for actions (:mod:`hookforge_lm.envs.babyai_text`).
"""

from __future__ import annotations

import gymnasium

SHOP = "hookforge/TextShop-v0"
BABYAI = "hookforge/BabyAIText-v0"

if SHOP not in gymnasium.registry:
    gymnasium.register(SHOP, entry_point="hookforge_lm.envs.shop:TextShopEnv",
                       max_episode_steps=10)
if BABYAI not in gymnasium.registry:
    gymnasium.register(BABYAI, entry_point="hookforge_lm.envs.babyai_text:make_babyai_text")
