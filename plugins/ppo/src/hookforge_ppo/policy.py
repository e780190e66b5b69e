"""The ``actor_critic`` model: policy and value networks for the spaces of a gymnasium env.

MLP trunks (or a small CNN for image observations), shared or separate for the actor and the
critic, orthogonal initialisation (gain sqrt(2) for hidden layers, 0.01 for the policy head, 1 for
the value head, as in stable-baselines3 and CleanRL), a Categorical head for Discrete actions,
one per dimension for MultiDiscrete, and a diagonal Gaussian with a state-independent log-std
for Box actions. ``predict`` plays evaluation episodes (see :mod:`hookforge_ppo.episodes`).

Checkpoints are safetensors: the weights and, when the training envs normalise observations,
the running mean and variance the policy needs to act (buffers of the module).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from hookforge.components import ComponentConfig, Model
from hookforge.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from hookforge.types import Dataset, DatasetInfo, Predictions

ACTIVATIONS = {"tanh": "Tanh", "relu": "ReLU", "gelu": "GELU", "silu": "SiLU"}


class CnnSettings(ComponentConfig):
    channels: list[int] = Field(default_factory=lambda: [16, 32, 64], description="conv channels")
    kernel: int = Field(2, ge=1, description="kernel size of every conv layer")
    features: int = Field(64, ge=1, description="width of the linear layer after the convs")


class ActorCriticConfig(ComponentConfig):
    hidden: list[int] = Field(default_factory=lambda: [64, 64], description="MLP widths")
    activation: Literal["tanh", "relu", "gelu", "silu"] = Field("tanh", description="activation")
    shared: bool = Field(False, description="one trunk for the actor and the critic")
    # a bool, so YAML's yes/no/true/false all mean what they say
    cnn: bool | Literal["auto"] = Field("auto", description="a CNN trunk (true), an MLP on the "
                                                            "flattened input (false), auto: a CNN "
                                                            "for image observations")
    cnn_settings: CnnSettings = Field(default_factory=CnnSettings)
    ortho_init: bool = Field(True, description="orthogonal initialisation")
    log_std_init: float = Field(0.0, description="Box actions: initial log standard deviation")
    deterministic_eval: bool = Field(True, description="evaluate with the most likely action "
                                                       "(false: sample)")
    device: str = Field("cpu", description="cpu, cuda or auto (small policies are faster on cpu)")


def _mlp(sizes: list[int], activation: str) -> Any:
    import torch

    layers: list[Any] = []
    for a, b in itertools.pairwise(sizes):
        layers += [torch.nn.Linear(a, b), getattr(torch.nn, ACTIVATIONS[activation])()]
    return torch.nn.Sequential(*layers)


class Network:
    """Builds the torch module; kept apart from the component so the module is plain torch."""

    @staticmethod
    def create(cfg: ActorCriticConfig, observation: dict[str, Any], action: dict[str, Any],
               image: bool) -> Any:
        import torch

        class ActorCriticNet(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                shape = observation["shape"]
                self.image = cfg.cnn is True or (cfg.cnn == "auto" and image)
                if self.image and len(shape) != 3:
                    raise ConfigError(f"model.cnn: the observations have shape {shape}, a CNN needs "
                                      f"images (height, width, channels)")
                n_inputs = int(math.prod(shape))
                self.register_buffer("obs_mean", torch.zeros(n_inputs))
                self.register_buffer("obs_var", torch.ones(n_inputs))
                self.register_buffer("obs_clip", torch.tensor(0.0))  # 0: no clipping
                self.register_buffer("obs_normalized", torch.tensor(0.0))

                def trunk() -> tuple[torch.nn.Module, int]:
                    if self.image:
                        s = cfg.cnn_settings
                        channels = [shape[-1], *s.channels]
                        convs: list[Any] = []
                        for a, b in itertools.pairwise(channels):
                            convs += [torch.nn.Conv2d(a, b, s.kernel), torch.nn.ReLU()]
                        body = torch.nn.Sequential(*convs, torch.nn.Flatten())
                        with torch.no_grad():
                            flat = body(torch.zeros(1, shape[-1], shape[0], shape[1])).shape[1]
                        return torch.nn.Sequential(body, torch.nn.Linear(flat, s.features),
                                                   torch.nn.ReLU()), s.features
                    if not cfg.hidden:
                        return torch.nn.Identity(), n_inputs
                    return _mlp([n_inputs, *cfg.hidden], cfg.activation), cfg.hidden[-1]

                self.actor_trunk, width = trunk()
                self.critic_trunk, _ = (self.actor_trunk, width) if cfg.shared else trunk()
                kind = action["kind"]
                if kind == "discrete":
                    self.logits_sizes = [action["n"]]
                elif kind == "multi_discrete":
                    self.logits_sizes = list(action["nvec"])
                elif kind == "box":
                    self.logits_sizes = []
                    self.action_dim = int(math.prod(action["shape"]))
                    self.log_std = torch.nn.Parameter(torch.full((self.action_dim,),
                                                                 cfg.log_std_init))
                else:
                    raise DataError(f"model 'actor_critic' cannot act in a {kind} action space "
                                    f"(it handles Discrete, MultiDiscrete and Box)")
                self.kind = kind
                outputs = sum(self.logits_sizes) if self.logits_sizes else self.action_dim
                self.policy_head = torch.nn.Linear(width, outputs)
                self.value_head = torch.nn.Linear(width, 1)
                if cfg.ortho_init:
                    for module in self.modules():
                        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                            torch.nn.init.orthogonal_(module.weight, math.sqrt(2))
                            torch.nn.init.zeros_(module.bias)
                    torch.nn.init.orthogonal_(self.policy_head.weight, 0.01)
                    torch.nn.init.orthogonal_(self.value_head.weight, 1.0)

            def features(self, obs: torch.Tensor) -> torch.Tensor:
                if self.image:  # (N, H, W, C) -> (N, C, H, W)
                    return obs.permute(0, 3, 1, 2)
                return obs.reshape(obs.shape[0], -1)

            def value(self, obs: torch.Tensor) -> torch.Tensor:
                return self.value_head(self.critic_trunk(self.features(obs))).squeeze(-1)

            def distribution(self, hidden: torch.Tensor) -> Any:
                from torch.distributions import Categorical, Normal

                out = self.policy_head(hidden)
                # validate_args=False: the inputs are the network's own outputs; the argument
                # checks cost a few tensor ops per call, thousands of calls per update
                if self.kind == "box":
                    return Normal(out, self.log_std.exp().expand_as(out), validate_args=False)
                return [Categorical(logits=part, validate_args=False)
                        for part in out.split(self.logits_sizes, dim=-1)]

            def act(self, obs: torch.Tensor, action: torch.Tensor | None = None,
                    deterministic: bool = False) -> tuple[torch.Tensor, ...]:
                """(action, log-prob, entropy, value): sampled, the most likely, or of ``action``."""
                x = self.features(obs)
                hidden = self.actor_trunk(x)
                value = self.value_head(hidden if cfg.shared else self.critic_trunk(x)).squeeze(-1)
                dist = self.distribution(hidden)
                if self.kind == "box":
                    if action is None:
                        action = dist.mean if deterministic else dist.sample()
                    return action, dist.log_prob(action).sum(-1), dist.entropy().sum(-1), value
                if action is None:
                    picks = [d.probs.argmax(-1) if deterministic else d.sample() for d in dist]
                    action = picks[0] if self.kind == "discrete" else torch.stack(picks, -1)
                columns = [action] if self.kind == "discrete" else list(action.unbind(-1))
                logprob = sum(d.log_prob(a) for d, a in zip(dist, columns, strict=True))
                entropy = sum(d.entropy() for d in dist)
                return action, logprob, entropy, value

            def normalize(self, obs: torch.Tensor) -> torch.Tensor:
                """Raw observations as the training envs' wrappers presented them."""
                if float(self.obs_normalized) == 0.0:
                    return obs
                flat = obs.reshape(obs.shape[0], -1)
                flat = (flat - self.obs_mean) / torch.sqrt(self.obs_var)  # var + the wrapper's eps
                if float(self.obs_clip) > 0:
                    flat = flat.clamp(-float(self.obs_clip), float(self.obs_clip))
                return flat.reshape(obs.shape)

        return ActorCriticNet()


class ActorCritic(Model):
    """Actor-critic networks for PPO: MLP or CNN trunks, shared or separate; Categorical,
    MultiDiscrete or diagonal-Gaussian policies."""

    Config = ActorCriticConfig
    default_loop = "ppo"

    net: Any = None
    info: DatasetInfo | None = None

    def build(self, run: Any, dataset: Dataset) -> None:
        import torch

        if dataset.task != "rl":
            raise DataError(f"model 'actor_critic' acts in environments: use the 'gym' data source "
                            f"(the data's task is {dataset.task})")
        self.info = dataset.info
        torch.manual_seed(run.seed)
        self.net = self._create(dataset.info)

    def _create(self, info: DatasetInfo) -> Any:
        from hookforge_torch import engine

        extra = info.extra
        net = Network.create(self.config, extra["observation_space"], extra["action_space"],
                             bool(extra.get("image")))
        self.device = engine.resolve_device(self.config.device)
        return net.to(self.device)

    def set_observation_stats(self, mean: Any, var: Any, clip: float | None) -> None:
        """The training envs' running observation statistics, so the policy acts on raw
        observations as it was trained to (evaluation, predict)."""
        import torch

        with torch.no_grad():
            self.net.obs_mean.copy_(torch.as_tensor(mean, dtype=torch.float32).reshape(-1))
            self.net.obs_var.copy_(torch.as_tensor(var, dtype=torch.float32).reshape(-1))
            self.net.obs_clip.fill_(float(clip or 0.0))
            self.net.obs_normalized.fill_(1.0)

    def predict(self, inputs: Any) -> Predictions:
        """One evaluation episode per seed in ``inputs``."""
        from hookforge_ppo.episodes import play

        return play(self, [int(s) for s in inputs])

    def save(self, directory: Path) -> None:
        from hookforge_torch.checkpoint import save_weights

        save_weights(self.net, directory)

    def load(self, directory: Path, info: DatasetInfo) -> None:
        from hookforge_torch.checkpoint import load_weights

        self.info = info
        self.net = self._create(info)
        load_weights(self.net, directory)
        self.net.to(self.device)

    def restore_weights(self, directory: Path) -> None:
        from hookforge_torch.checkpoint import load_weights

        load_weights(self.net, directory)
