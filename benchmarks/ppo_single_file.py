"""A single-file PPO for CartPole in the style of CleanRL (written for the throughput benchmark,
the baseline hookforge's ppo loop is measured against): gymnasium's SyncVectorEnv, an MLP actor
and critic, GAE, the clipped objective, minibatch epochs, linear schedules, nothing else.

    python benchmarks/ppo_single_file.py --seed 1 --total-timesteps 100000
prints the final mean return of 20 deterministic evaluation episodes and the seconds taken.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical


def layer(n_in: int, n_out: int, gain: float = 2 ** 0.5) -> nn.Linear:
    linear = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(linear.weight, gain)
    nn.init.zeros_(linear.bias)
    return linear


class Agent(nn.Module):
    def __init__(self, n_obs: int, n_actions: int) -> None:
        super().__init__()
        self.critic = nn.Sequential(layer(n_obs, 64), nn.Tanh(), layer(64, 64), nn.Tanh(),
                                    layer(64, 1, 1.0))
        self.actor = nn.Sequential(layer(n_obs, 64), nn.Tanh(), layer(64, 64), nn.Tanh(),
                                   layer(64, n_actions, 0.01))

    def act(self, x: torch.Tensor, action: torch.Tensor | None = None):
        dist = Categorical(logits=self.actor(x))
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), self.critic(x).squeeze(-1)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--total-timesteps", type=int, default=100_000)
    a = p.parse_args()
    n_envs, n_steps, batch, epochs, gamma, lam, lr0, clip0 = 8, 32, 256, 20, 0.98, 0.8, 1e-3, 0.2
    started = time.perf_counter()
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1") for _ in range(n_envs)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    agent = Agent(4, 2)
    optimizer = torch.optim.Adam(agent.parameters(), lr=lr0, eps=1e-5)
    obs_np, _ = envs.reset(seed=[a.seed + i for i in range(n_envs)])
    next_obs = torch.as_tensor(obs_np, dtype=torch.float32)
    iterations = a.total_timesteps // (n_envs * n_steps)
    for iteration in range(iterations):
        frac = 1.0 - iteration / iterations
        for group in optimizer.param_groups:
            group["lr"] = lr0 * frac
        clip = clip0 * frac
        obs = torch.zeros((n_steps, n_envs, 4))
        actions, logprobs, rewards, dones, values = (torch.zeros((n_steps, n_envs)) for _ in range(5))
        for t in range(n_steps):
            obs[t] = next_obs
            with torch.no_grad():
                action, logprob, _, value = agent.act(next_obs)
            actions[t], logprobs[t], values[t] = action, logprob, value
            obs_np, reward, term, trunc, info = envs.step(action.numpy())
            reward = torch.as_tensor(reward, dtype=torch.float32)
            cut = trunc & ~term
            if cut.any():  # a time limit is not a termination: bootstrap the final value
                final = torch.as_tensor(np.stack([info["final_obs"][i] for i in np.flatnonzero(cut)]),
                                        dtype=torch.float32)
                with torch.no_grad():
                    reward[torch.as_tensor(cut)] += gamma * agent.critic(final).squeeze(-1)
            rewards[t], dones[t] = reward, torch.as_tensor(term | trunc, dtype=torch.float32)
            next_obs = torch.as_tensor(obs_np, dtype=torch.float32)
        with torch.no_grad():
            next_value = agent.critic(next_obs).squeeze(-1)
            advantages = torch.zeros_like(rewards)
            last = torch.zeros(n_envs)
            for t in reversed(range(n_steps)):
                live = 1.0 - dones[t]
                nv = next_value if t == n_steps - 1 else values[t + 1]
                delta = rewards[t] + gamma * nv * live - values[t]
                last = delta + gamma * lam * live * last
                advantages[t] = last
            returns = advantages + values
        b_obs, b_act, b_logp = obs.reshape(-1, 4), actions.reshape(-1), logprobs.reshape(-1)
        b_adv, b_ret = advantages.reshape(-1), returns.reshape(-1)
        for _ in range(epochs):
            order = torch.randperm(n_envs * n_steps)
            for start in range(0, n_envs * n_steps, batch):
                idx = order[start:start + batch]
                _, newlogp, _entropy, newv = agent.act(b_obs[idx], b_act[idx].long())
                ratio = (newlogp - b_logp[idx]).exp()
                adv = (b_adv[idx] - b_adv[idx].mean()) / (b_adv[idx].std() + 1e-8)
                pg = -torch.min(adv * ratio, adv * ratio.clamp(1 - clip, 1 + clip)).mean()
                v_loss = 0.5 * ((newv - b_ret[idx]) ** 2).mean()
                loss = pg + 0.5 * v_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), 0.5)
                optimizer.step()
    envs.close()
    trained = time.perf_counter() - started
    env = gym.make("CartPole-v1")
    total = []
    for episode in range(20):
        o, _ = env.reset(seed=10_000 + episode)
        done, ret = False, 0.0
        while not done:
            with torch.no_grad():
                act = agent.actor(torch.as_tensor(o, dtype=torch.float32)).argmax().item()
            o, r, te, tr, _ = env.step(act)
            ret += r
            done = te or tr
        total.append(ret)
    print(f"return {np.mean(total):.1f} train_s {trained:.2f} total_s {time.perf_counter() - started:.2f}")


if __name__ == "__main__":
    main()
