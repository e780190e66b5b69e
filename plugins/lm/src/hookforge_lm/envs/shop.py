"""``hookforge/TextShop-v0``: buy what is on the shopping list, then check out.

Each episode draws (from its seed) the items the shop sells and a shopping list of some of them.
The policy answers in words, one command a turn: ``buy ITEM`` or ``checkout``. Rewards:

- per step: ``+step_reward`` for buying an item the list still needs, ``-step_reward`` for an
  item it does not need (or one too many), something the shop does not sell, or a command it
  does not understand;
- on completion: ``checkout`` with exactly the listed items scores ``+1`` and is a success
  (``info["is_success"]``); a checkout with anything else ends the episode with 0.

Episodes end at checkout, or after ``max_episode_steps`` turns (registered: 10). The expert
buys the missing items in list order and checks out, so a demonstration is short and right.
"""

from __future__ import annotations

import string
from collections import Counter
from typing import Any

import gymnasium
from gymnasium import spaces

ITEMS = ("apple", "bread", "milk", "eggs", "cheese", "rice", "tea", "soap", "flour", "honey",
         "butter", "salt")
MAX_TEXT = 2000


def parse_command(text: str) -> tuple[str, str]:
    """("buy", item), ("checkout", ""), or ("?", what was said): lower case, spaces collapsed,
    trailing punctuation dropped, so "Buy  Apple." is a purchase of apple."""
    words = text.strip().lower().rstrip(".!").split()
    if words == ["checkout"] or words == ["check", "out"]:
        return "checkout", ""
    if len(words) >= 2 and words[0] == "buy":
        return "buy", " ".join(words[1:])
    return "?", " ".join(words)


class TextShopEnv(gymnasium.Env):
    """The shopping task (see the module docstring)."""

    metadata = {"render_modes": []}

    def __init__(self, catalogue_size: int = 5, list_size: tuple[int, int] = (1, 3),
                 max_quantity: int = 1, step_reward: float = 0.1) -> None:
        low, high = (list_size, list_size) if isinstance(list_size, int) else tuple(list_size)
        if not 2 <= catalogue_size <= len(ITEMS):
            raise ValueError(f"catalogue_size must be in [2, {len(ITEMS)}], got {catalogue_size}")
        if not 1 <= low <= high <= catalogue_size:
            raise ValueError(f"list_size ({low}, {high}) must satisfy 1 <= low <= high <= "
                             f"catalogue_size ({catalogue_size})")
        if max_quantity < 1:
            raise ValueError(f"max_quantity must be at least 1, got {max_quantity}")
        self.catalogue_size, self.list_size = catalogue_size, (low, high)
        self.max_quantity, self.step_reward = max_quantity, step_reward
        charset = string.printable
        self.observation_space = spaces.Text(MAX_TEXT, min_length=0, charset=charset)
        self.action_space = spaces.Text(MAX_TEXT, min_length=0, charset=charset)
        self.sold: list[str] = []
        self.wanted: Counter[str] = Counter()
        self.basket: Counter[str] = Counter()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        rng = self.np_random
        self.sold = sorted(rng.choice(ITEMS, self.catalogue_size, replace=False).tolist())
        size = int(rng.integers(self.list_size[0], self.list_size[1] + 1))
        wanted = rng.choice(self.sold, size, replace=False).tolist()
        self.wanted = Counter({item: int(rng.integers(1, self.max_quantity + 1)) for item in wanted})
        self.basket = Counter()
        return (f"Shopping list: {self._listing(self.wanted)}. The shop sells "
                f"{', '.join(self.sold)}. Say 'buy ITEM' or 'checkout'."), {}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        command, item = parse_command(str(action))
        if command == "checkout":
            success = self.basket == self.wanted
            verdict = "Everything on the list" if success else "That is not the list"
            return (f"{verdict}. Goodbye.", 1.0 if success else 0.0, True, False,
                    {"is_success": success})
        if command == "buy" and item in self.sold:
            needed = self.basket[item] < self.wanted[item]
            self.basket[item] += 1
            reward = self.step_reward if needed else -self.step_reward
            return f"You put {item} in the basket. Basket: {self._listing(self.basket)}.", \
                reward, False, False, {}
        what = f"The shop sells no {item}" if command == "buy" else \
            f"I do not understand '{item[:40]}'"
        return f"{what}. Basket: {self._listing(self.basket)}.", -self.step_reward, False, False, {}

    def expert_action(self) -> str:
        """Buy the first listed item still missing, else check out."""
        for item in sorted(self.wanted):
            if self.basket[item] < self.wanted[item]:
                return f"buy {item}"
        return "checkout"

    @staticmethod
    def _listing(counts: Counter[str]) -> str:
        if not counts:
            return "empty"
        return ", ".join(item if n == 1 else f"{n} {item}" for item, n in sorted(counts.items()))

