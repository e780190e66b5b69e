"""The PPO training loop, every step of an iteration visible in :meth:`PPOTrainer.iteration`:
collect a rollout, bootstrap truncations, compute GAE, run the minibatch epochs, report.

Exact resume: the resume point (``checkpoints/last``, at an iteration boundary) holds the
weights, the optimizer, the torch and numpy RNGs, the iteration and step counters, the next
observations, the best value so far, and the environments' state (env_state.json, see
:mod:`hookforge_ppo.envs`). The schedules are functions of the iteration and the minibatch order
is drawn from a generator seeded by (run.seed, iteration), so neither needs saving. Evaluation
episodes run in their own RNG, so evaluating does not change what training does next.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hookforge.errors import DataError, RunInterrupted
from hookforge.seeds import derive_seed
from hookforge.types import FitResult
from hookforge_ppo import envs as gym_envs
from hookforge_ppo.loop import check_rollout
from hookforge_ppo.ppo import bootstrap_truncated, explained_variance, gae, minibatches, ppo_loss, schedule
from hookforge_torch import engine

log = logging.getLogger("hookforge")
ENV_STATE = "env_state.json"
TRAINING_STATE = "training_state.pt"


class PPOTrainer:
    def __init__(self, cfg: Any, run: Any, model: Any, dataset: Any) -> None:

        self.cfg, self.run, self.model, self.dataset = cfg, run, model, dataset
        self.gym = gym_envs.GymConfig.model_validate(dataset.info.extra["gym"])
        self.num_envs = self.gym.num_envs
        rollout = check_rollout(cfg, self.num_envs)  # again here: a resume skips preflight
        engine.seed_everything(run.seed)
        self.device = engine.resolve_device(cfg.device)
        model.net.to(self.device)
        model.device = self.device
        self.net = model.net
        self.iterations = max(1, cfg.total_timesteps // rollout)
        self.lr = schedule(cfg.learning_rate, "learning_rate")
        self.clip = schedule(cfg.clip_range, "clip_range")
        self.clip_vf = schedule(cfg.clip_range_vf, "clip_range_vf") if cfg.clip_range_vf is not None \
            else None
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr(1.0), eps=cfg.adam_eps)
        self.envs = gym_envs.make_vector_env(self.gym, derive_seed(run.seed, "env", "actions"),
                                             bool(dataset.info.extra.get("image")))
        self.maximize = cfg.monitor_mode == "max" or (cfg.monitor_mode == "auto"
                                                       and "loss" not in cfg.monitor)
        self.iteration = 0
        self.global_step = 0
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.interrupted = False
        self.last_saved_iteration: int | None = None
        seeds = gym_envs.env_seeds(run.seed, self.num_envs, "train")
        obs, _ = self.envs.reset(seed=seeds)
        self.next_obs = self._tensor(obs)
        if run.resume_from is not None:
            self._restore(run.resume_from.path)
        run.emit("ppo", iterations=self.iterations, rollout=rollout, envs=self.num_envs,
                 device=str(self.device))

    # -- the loop ------------------------------------------------------------------------------------
    def train(self) -> FitResult:
        previous = engine.catch_interrupts(self, "interrupted", "saving 'last' after this iteration")
        try:
            while self.iteration < self.iterations and not self.run.should_stop:
                self.iteration_step()
        finally:
            engine.restore_signal_handlers(previous)
            self.envs.close()
        best = self.run.record.checkpoint_dir("best") if self.run.primary else None
        if best is not None:  # the model is returned in its best state
            self.model.restore_weights(best)
        return FitResult(epochs=self.iteration, steps=self.global_step, best_metric=self.best_value,
                         best_epoch=self.best_epoch, stop_reason=self.run.stop_reason,
                         extra={"monitor": self.cfg.monitor})

    def iteration_step(self) -> None:
        cfg, net, envs, n, T = self.cfg, self.net, self.envs, self.num_envs, self.cfg.n_steps
        started = time.perf_counter()
        remaining = 1.0 - self.iteration / self.iterations  # schedules run from 1 to 0
        lr, clip = self.lr(remaining), self.clip(remaining)
        clip_vf = self.clip_vf(remaining) if self.clip_vf is not None else None
        for group in self.optimizer.param_groups:
            group["lr"] = lr

        # 1. Rollout: T steps of every env with the current policy.
        obs = torch.zeros((T, n, *self.next_obs.shape[1:]), device=self.device)
        actions: list[torch.Tensor] = []
        logprobs = torch.zeros((T, n), device=self.device)
        rewards = torch.zeros((T, n), device=self.device)
        dones = torch.zeros((T, n), device=self.device)
        values = torch.zeros((T, n), device=self.device)
        returns_done: list[float] = []
        lengths_done: list[int] = []
        env_seconds = 0.0
        for t in range(T):
            obs[t] = self.next_obs
            with torch.no_grad():
                action, logprob, _, value = net.act(self.next_obs)
            actions.append(action)
            logprobs[t], values[t] = logprob, value
            stepped = time.perf_counter()
            next_obs, reward, terminated, truncated, info = envs.step(self._env_action(action))
            env_seconds += time.perf_counter() - stepped
            self.global_step += n
            if not np.isfinite(next_obs).all():
                raise DataError(f"the environment returned a NaN or infinite observation at step "
                                f"{self.global_step} (iteration {self.iteration}); training stopped "
                                f"and " + (f"checkpoint 'last' from iteration "
                                           f"{self.last_saved_iteration} is kept"
                                           if self.last_saved_iteration is not None
                                           else "no checkpoint was saved yet"))
            reward_t = torch.as_tensor(reward, dtype=torch.float32, device=self.device)
            # 2. Truncation is not termination: bootstrap V(final obs) into the reward.
            cut = np.asarray(truncated) & ~np.asarray(terminated)
            if cut.any():
                final = self._final_observations(info, cut)
                with torch.no_grad():
                    final_values = torch.zeros(n, device=self.device)
                    final_values[torch.as_tensor(cut)] = net.value(final)
                reward_t = bootstrap_truncated(reward_t, torch.as_tensor(cut, dtype=torch.float32),
                                               final_values, cfg.gamma)
            rewards[t] = reward_t
            dones[t] = torch.as_tensor(np.asarray(terminated) | np.asarray(truncated),
                                       dtype=torch.float32)
            final_info = info.get("final_info")
            if final_info is not None and "episode" in final_info:  # raw returns of ended episodes
                finished = final_info["_episode"]
                returns_done += final_info["episode"]["r"][finished].tolist()
                lengths_done += final_info["episode"]["l"][finished].tolist()
            self.next_obs = self._tensor(next_obs)

        # 3. Advantages and returns (GAE), bootstrapping from the observation after the rollout.
        with torch.no_grad():
            last_value = net.value(self.next_obs)
        advantages, returns = gae(rewards, values, dones, last_value, cfg.gamma, cfg.gae_lambda)

        # 4. n_epochs over shuffled minibatches of the flattened rollout.
        b_obs = obs.reshape(T * n, *obs.shape[2:])
        b_actions = torch.stack(actions).reshape(T * n, *actions[0].shape[1:])
        b_logprobs, b_advantages = logprobs.reshape(-1), advantages.reshape(-1)
        b_returns, b_values = returns.reshape(-1), values.reshape(-1)
        generator = torch.Generator().manual_seed(derive_seed(self.run.seed, "minibatches",
                                                              self.iteration))
        stats: dict[str, list[torch.Tensor]] = {k: [] for k in ("policy_loss", "value_loss",
                                                                "entropy", "approx_kl",
                                                                "clip_fraction")}
        updates, stopped_early = 0, False
        update_started = time.perf_counter()
        for _epoch in range(cfg.n_epochs):
            for idx in minibatches(T * n, cfg.batch_size, generator):
                _, new_logprob, entropy, new_value = net.act(b_obs[idx], b_actions[idx])
                parts = ppo_loss(new_logprob, b_logprobs[idx], b_advantages[idx], new_value,
                                 b_values[idx], b_returns[idx], entropy, clip_range=clip,
                                 clip_range_vf=clip_vf, vf_coef=cfg.vf_coef,
                                 ent_coef=cfg.ent_coef, normalize_advantages=cfg.normalize_advantage)
                if cfg.target_kl is not None and float(parts.approx_kl) > 1.5 * cfg.target_kl:
                    stopped_early = True  # this minibatch moved the policy too far: no step
                    break
                self.optimizer.zero_grad(set_to_none=True)
                parts.loss.backward()
                if cfg.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                updates += 1
                for key in stats:
                    stats[key].append(getattr(parts, key))
            if stopped_early:
                break
        update_seconds = time.perf_counter() - update_started

        # 5. Report the iteration: rollout and update metrics, evaluation, checkpoints.
        seconds = time.perf_counter() - started
        metrics: dict[str, float] = {
            f"train/{k}": float(torch.stack(v).mean()) if v else math.nan for k, v in stats.items()}
        metrics.update({
            "train/explained_variance": explained_variance(b_values, b_returns),
            "train/learning_rate": lr, "train/clip_range": clip, "train/updates": float(updates),
            "train/stopped_early": float(stopped_early),
            "rollout/fps": T * n / max(seconds, 1e-9), "rollout/episodes": float(len(returns_done)),
            "time/env_s": env_seconds, "time/update_s": update_seconds,
            "time/policy_s": max(seconds - env_seconds - update_seconds, 0.0)})
        if returns_done:
            metrics.update({"rollout/mean_return": float(np.mean(returns_done)),
                            "rollout/median_return": float(np.median(returns_done)),
                            "rollout/mean_length": float(np.mean(lengths_done))})
        last = self.iteration + 1 == self.iterations
        if (cfg.eval_every and (self.iteration + 1) % cfg.eval_every == 0) or last:
            self._sync_observation_stats()
            for name, value in self.run.score(self.model, self.dataset, "val").items():
                metrics[f"val/{name}"] = value
        self.run.end_epoch(self.iteration, self.global_step, metrics, duration_s=seconds)
        if "val/mean_return" in metrics and self.run.primary:
            log.info("iteration %d/%d  step %d  training return %.4g  evaluation return %.4g",
                     self.iteration + 1, self.iterations, self.global_step,
                     metrics.get("rollout/mean_return", math.nan), metrics["val/mean_return"])
        self._track_best(metrics)
        self.iteration += 1
        if self.iteration % cfg.checkpoint_every == 0 or last or self.run.should_stop \
                or self.interrupted:
            self._save_last()
        if self.interrupted:
            raise RunInterrupted("interrupted")

    # -- observations and actions --------------------------------------------------------------------
    def _tensor(self, obs: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device)

    def _env_action(self, action: torch.Tensor) -> Any:
        return action.cpu().numpy()

    def _final_observations(self, info: dict[str, Any], cut: Any) -> torch.Tensor:
        """The last observations of the episodes a time limit cut (transformed inside each env
        like every observation)."""
        return self._tensor(np.stack([info["final_obs"][i] for i in np.flatnonzero(cut)]))

    def _sync_observation_stats(self) -> None:
        """The policy acts on raw observations at evaluation: give it the normalisers' stats."""
        stats = gym_envs.observation_stats(self.envs)
        if stats is not None:
            self.model.set_observation_stats(*stats, self.gym.clip_observations)

    # -- best, last and resume -----------------------------------------------------------------------
    def _track_best(self, metrics: dict[str, float]) -> None:
        value = metrics.get(self.cfg.monitor)
        if value is None or not math.isfinite(value):
            return
        if self.best_value is None or (value > self.best_value if self.maximize
                                       else value < self.best_value):
            self.best_value, self.best_epoch = value, self.iteration
            self.run.save_checkpoint("best", self.model.save, epoch=self.iteration,
                                     step=self.global_step, metric=value,
                                     extra={"monitor": self.cfg.monitor})

    def _save_last(self) -> None:

        self._sync_observation_stats()
        snapshot, why = gym_envs.snapshot(self.envs)
        state = {"optimizer": self.optimizer.state_dict(), "rng": engine.rng_state(),
                 "progress": {"iteration": self.iteration, "global_step": self.global_step},
                 "best": {"value": self.best_value, "epoch": self.best_epoch},
                 "stop_reason": self.run.stop_reason if self.run.should_stop else None,
                 "next_obs": self.next_obs.cpu(), "env_snapshot": why or "saved"}

        def fill(directory: Path) -> None:
            self.model.save(directory)
            torch.save(state, directory / TRAINING_STATE)
            if snapshot is not None:
                gym_envs.write_snapshot(snapshot, directory / ENV_STATE)

        self.run.save_checkpoint("last", fill, epoch=self.iteration, step=self.global_step)
        self.last_saved_iteration = self.iteration

    def _restore(self, directory: Path) -> None:
        from hookforge.errors import CheckpointError

        try:
            state = torch.load(directory / TRAINING_STATE, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise CheckpointError(f"{directory} has no {TRAINING_STATE}: it cannot be resumed") from None
        self.model.restore_weights(directory)
        self.optimizer.load_state_dict(state["optimizer"])
        progress = state["progress"]
        self.iteration, self.global_step = progress["iteration"], progress["global_step"]
        self.last_saved_iteration = self.iteration
        self.best_value, self.best_epoch = state["best"]["value"], state["best"]["epoch"]
        if state.get("stop_reason"):
            self.run.should_stop, self.run.stop_reason = True, state["stop_reason"]
        snapshot = gym_envs.read_snapshot(directory / ENV_STATE)
        if snapshot is not None:
            gym_envs.restore(self.envs, snapshot)
            self.next_obs = state["next_obs"].to(self.device)
        else:
            log.warning("the environments' state was not saved (%s): resuming with fresh episodes "
                        "from seeds of iteration %d, so the run continues but not bit for bit",
                        state.get("env_snapshot"), self.iteration)
            obs, _ = self.envs.reset(seed=gym_envs.env_seeds(
                derive_seed(self.run.seed, "resume", self.iteration), self.num_envs, "train"))
            self.next_obs = self._tensor(obs)
        engine.set_rng_state(state["rng"])
        log.info("resuming PPO at iteration %d (step %d)", self.iteration, self.global_step)
