"""`augury rl`: reinforcement learning from rewards: PPO with a value head, or a group-relative variant (GRPO, RLOO).

    augury rl --policy_run runs/sft --prompts prompts.jsonl --reward_model runs/rm --out runs/rl --steps 100
    augury rl --policy_run runs/sft --prompts prompts.jsonl --reward_functions my_rewards:exact_match --out runs/rl

Each step samples `num_generations` completions for each of `prompts_per_step` prompts with the batched engine,
scores them with a weighted sum of reward sources (a reward model from `augury rm`; Python functions with TRL's
signature `fn(prompts, completions, **columns) -> list[float]`, given every other column of the prompt row and
`completion_ids`), turns rewards into advantages and takes `num_ppo_epochs` clipped policy-gradient steps.
`algorithm ppo` is the GPT-4 report's: a value head on the policy's hidden states, the KL to the frozen starting
policy inside the per-token reward (`kl_coef`), the score on the last token, GAE (`gamma`, `lam`), whitened
advantages and a clipped value loss (`vf_coef`); `grpo` / `rloo` need no value model: group-relative advantages and
a k3 KL penalty in the loss.
Settings (augury/align/rl_config.py) use TRL's names. It logs the reward per source, KL,
entropy, response length and clip fraction to metrics.jsonl; stops naming the step when the loss is not finite or
the KL passes `max_kl`; resumes exactly (generation seeds derive from the seed and the step). The output folder is
an ordinary augury run.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from augury.align.data import AlignDataError
from augury.align.rl_config import RESUMABLE, RLConfig
from augury.align.rl_losses import (
    clipped_policy_loss,
    clipped_value_loss,
    gae,
    group_advantages,
    kl_k1,
    kl_k3,
    masked_mean,
    nanstd,
    rloo_advantages,
    whiten,
)
from augury.align.rl_prompts import load_prompts, prompt_strata, step_prompts
from augury.align.rl_rewards import (
    Rollout,
    load_reward_functions,
    load_rubric_grader,
    rollout_rewards,
)
from augury.align.runs import (
    RunStopped,
    check_resumed_settings,
    checkpoint_note,
    open_output,
    refuse_reward_model,
    removed_on_failure,
    stage_status,
    start_output,
    write_manifest,
)
from augury.data.chat import chat_token_ids
from augury.errors import UsageError
from augury.evals.backends.errors import EndpointError
from augury.io import (
    append_jsonl,
    atomic_write_bytes,
)
from augury.model.generate import Generation, SamplingParams, generate


class RLDiverged(RunStopped):
    pass


# What stops a started run with a message for the user (bad prompts or rewards, a grader that cannot be loaded or
# whose endpoint fails, a diverged loss): a command running RL as a stage reports them as one error line
RL_FAILURES = (RLDiverged, EndpointError, ValueError, UsageError)


def sequence_logps(model, rollouts: list[Rollout], pad_id: int, value_head=None, temperature: float = 1.0):
    """(log-probs of each completion token, entropy at each of those positions, mask), each (N, T); with a value
    head, also the value at each of those positions (the state before the token is chosen). The logits are divided
    by the `temperature` the completions were sampled at (as TRL does): the policy improved is the one sampled."""
    seqs = [r.prompt_ids + r.completion_ids for r in rollouts]
    width = max(len(s) for s in seqs)
    T = max(1, max(len(r.completion_ids) for r in rollouts))
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
    hidden = model(ids, return_hidden=True)
    logp_all = torch.log_softmax(model.output_logits(hidden).float() / temperature, -1)
    values_all = value_head(hidden.float()).squeeze(-1) if value_head is not None else None
    logp = torch.zeros(len(seqs), T)
    entropy = torch.zeros(len(seqs), T)
    mask = torch.zeros(len(seqs), T)
    values = torch.zeros(len(seqs), T)
    for i, r in enumerate(rollouts):
        n, p = len(r.completion_ids), len(r.prompt_ids)
        if n == 0:
            continue
        pos = torch.arange(p - 1, p - 1 + n)
        logp[i, :n] = logp_all[i, pos, torch.tensor(r.completion_ids)]
        entropy[i, :n] = -(logp_all[i, pos].exp() * logp_all[i, pos]).sum(-1)
        mask[i, :n] = 1.0
        if values_all is not None:
            values[i, :n] = values_all[i, pos]
    if value_head is not None:
        return logp, entropy, mask, values
    return logp, entropy, mask


def rollout_of(row: dict, prompt_ids: list[int], gen: Generation) -> Rollout:
    """The rollout RL trains on: the sampled ids with the stop token that ended them (end of turn or of text), as
    TRL's trainers keep the EOS in the completion mask; without it the choice to stop is never trained, and a
    reward for a reply that ends in time (an exact answer, a short refusal) cannot teach the policy to end it."""
    ids = gen.token_ids + ([gen.stop_token_id] if gen.stop_token_id is not None else [])
    return Rollout(row, prompt_ids, ids, gen.text, gen.finish_reason == "stop")


def _seed_for(seed: int, step: int, i: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{step}:{i}".encode()).digest()[:4], "big")


def train_rl(cfg: RLConfig, log=print, after_step=None) -> Path:
    """Train; `after_step(step, policy)`, when given, runs after each optimizer step and may return a dict of
    extra metrics for that step's record (e.g. a held-out evaluation); it must leave the global RNG alone for
    `resume` to stay exact."""
    from augury.model.run import load_run
    from augury.train.checkpoint import load_checkpoint, save_checkpoint
    from augury.train.resume import trim_metrics

    cfg.validate()
    out = Path(cfg.out)
    ckpt = open_output(out, cfg.resume, "rl")
    if ckpt is not None:
        check_resumed_settings(out, "rl", cfg, RESUMABLE)
    refuse_reward_model(cfg.policy_run, "--policy_run",
                        "the pretrained, SFT or RL run to improve (a reward model goes in --reward_model)")
    functions = load_reward_functions(cfg.reward_functions)
    reward_model = None
    if cfg.reward_model:
        from augury.align.rm import load_reward_model

        reward_model = load_reward_model(cfg.reward_model)
    reference, tok, mcfg = load_run(cfg.policy_run)
    policy = copy.deepcopy(reference).train()
    reference.eval().requires_grad_(False)
    special = chat_token_ids(tok)
    rows, prompts = load_prompts(cfg.prompts, tok, mcfg.max_seq_len, cfg.response_length)
    grader = load_rubric_grader(cfg, rows) if cfg.grader else None
    strata = prompt_strata(cfg, rows)
    value_head = None
    params = list(policy.parameters())  # what the optimizer updates (and the gradient clip covers)
    if cfg.algorithm == "ppo":
        value_head = torch.nn.Linear(mcfg.d_model, 1)
        torch.nn.init.zeros_(value_head.weight)
        torch.nn.init.zeros_(value_head.bias)
        params += list(value_head.parameters())
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.95))
    step = 0
    if ckpt is not None:
        if value_head is not None:
            head = out / "value_heads" / f"{ckpt.name}.safetensors"
            if not head.is_file():
                raise AlignDataError(f"--resume: {head} is missing (the value head of {ckpt.name})")
            value_head.load_state_dict(load_file(str(head)))
        step = load_checkpoint(ckpt, policy, optimizer)["step"]
        if step > cfg.steps:
            raise AlignDataError(f"--resume: {out} is already at step {step}, past --steps {cfg.steps}")
        if step == cfg.steps:
            log(f"{out} has already trained all {cfg.steps} steps: nothing to do")
            if stage_status(out) is True:
                return out
        else:
            log(f"resuming {out} at step {step}")
        trim_metrics(out / "metrics.jsonl", step)  # the steps after the checkpoint are redone, not logged twice
        loop = contextlib.nullcontext()
    else:
        loop = removed_on_failure(out)
    with loop:
        if ckpt is None:
            start_output(out, cfg.policy_run, mcfg, "rl", cfg)
            write_manifest(out, "rl", policy_run=cfg.policy_run, finished=False)
        pad_id = tok.token_to_id("<|pad|>") or 0
        G, T = cfg.num_generations, cfg.temperature
        t0 = time.perf_counter()
        while step < cfg.steps:
            batch = [prompts[int(i)] for i in step_prompts(cfg, step, len(prompts), strata)]
            policy.eval()
            sampling = [SamplingParams(max_tokens=cfg.response_length, temperature=cfg.temperature,
                                       stop_token_ids=[special["end"], special["bos"]] if chat else [special["bos"]],
                                       seed=_seed_for(cfg.seed, step, j))
                        for j, (_, _, chat) in enumerate(b for b in batch for _ in range(G))]
            gens = generate(policy, tok, [ids for _, ids, _ in batch for _ in range(G)], sampling)
            rollouts = [rollout_of(row, ids, g) for (row, ids, _), g in zip((b for b in batch for _ in range(G)), gens)]
            failed_before = grader.stats["failed"] if grader is not None else 0
            # unscored rollouts (a failed grading; no source applied) have reward NaN and are left out of the update
            try:
                rewards, by_source, scored = rollout_rewards(cfg, rollouts, reward_model, functions, grader, G)
            except EndpointError as err:  # a judge endpoint that is down, or answers in a way retrying cannot fix
                raise RLDiverged(f"step {step + 1}: the grader {cfg.grader} failed: {err}; "
                                 f"{checkpoint_note(out)}") from None
            failed = grader.stats["failed"] - failed_before if grader is not None else 0
            # a share of the rollouts graded (tagged with a kind): untagged ones cannot fail, and counting them let
            # a step whose every graded rollout failed train on
            graded = sum(r.row.get(cfg.kind_column) not in (None, "") for r in rollouts)
            if failed > cfg.max_grader_failures * graded:
                raise RLDiverged(f"step {step + 1}: the grader failed on {failed} of {graded} graded rollouts "
                                 f"({dict(grader.stats)}); {checkpoint_note(out)}")
            policy.train()
            finished = torch.tensor([r.finished for r in rollouts])
            kept = torch.from_numpy(scored) & (finished | (not cfg.mask_truncated_completions))
            trained = kept.float()[:, None]
            with torch.no_grad():
                ref_logp, _, _ = sequence_logps(reference, rollouts, pad_id, temperature=T)
                if value_head is not None:
                    old_logp, _, tokens, old_values = sequence_logps(policy, rollouts, pad_id, value_head,
                                                                     temperature=T)
                    mask = tokens * trained
                    advantages, returns = ppo_targets(cfg, torch.nan_to_num(rewards, nan=0.0), old_logp, ref_logp,
                                                      old_values, mask)
                else:
                    old_logp, _, tokens = sequence_logps(policy, rollouts, pad_id, temperature=T)
                    mask = tokens * trained
                    advantages = (group_advantages if cfg.algorithm == "grpo" else rloo_advantages)(rewards, G)[:, None]
            for g in optimizer.param_groups:
                g["lr"] = cfg.lr * min(1.0, (step + 1) / 5)
            for _ in range(cfg.num_ppo_epochs):
                if value_head is not None:
                    logp, entropy, _, values = sequence_logps(policy, rollouts, pad_id, value_head, temperature=T)
                    pg_loss, clip_frac = clipped_policy_loss(logp, old_logp, advantages, mask, cfg.cliprange)
                    loss = pg_loss + cfg.vf_coef * clipped_value_loss(values, old_values, returns, mask,
                                                                      cfg.cliprange_value)
                else:
                    logp, entropy, _ = sequence_logps(policy, rollouts, pad_id, temperature=T)
                    pg_loss, clip_frac = clipped_policy_loss(logp, old_logp, advantages, mask, cfg.cliprange)
                    # TRL's GRPO penalty: per completion, then over the batch (as the policy loss)
                    loss = pg_loss + cfg.kl_coef * masked_mean(kl_k3(logp, ref_logp), mask, dim=-1).mean()
                # what is logged (k3, TRL's GRPO `kl`) and checked against max_kl (k1): means over every completion
                # token, rollouts left out of the update included (they are the policy's samples too; counted as 0
                # they diluted it). k3 weighs a token by exp(ref - logp): one rare token the policy has pushed far
                # below the reference, sampled all the same, passes any bound, so it cannot be what stops a run
                kl_now = float(masked_mean(kl_k3(logp.detach(), ref_logp), tokens))
                kl_k1_now = float(masked_mean(kl_k1(logp.detach(), ref_logp), tokens))
                if not torch.isfinite(loss):
                    raise RLDiverged(f"step {step + 1}: the loss is {float(loss.detach())}; "
                                     f"{checkpoint_note(out)}")
                if kl_k1_now > cfg.max_kl:
                    raise RLDiverged(f"step {step + 1}: KL to the reference {kl_k1_now:.3g} (k1, per token) > "
                                     f"max_kl {cfg.max_kl:g}; "
                                     f"{checkpoint_note(out)}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
            step += 1
            # means over the scored rollouts only (TRL's nanmean); null when none was scored
            mean_reward = float(rewards.nanmean()) if scored.any() else None
            record = {"step": step, "reward": mean_reward, **{f"reward/{k}": v for k, v in by_source.items()},
                      "unscored": int((~scored).sum()),
                      "kl": kl_now, "kl_k1": kl_k1_now, "entropy": float(masked_mean(entropy.detach(), mask)),
                      "response_length": sum(len(r.completion_ids) for r in rollouts) / len(rollouts),
                      "completions/clipped_ratio": float((~finished).float().mean()),  # TRL's name: cut at the limit
                      "clip_fraction": float(clip_frac),
                      "loss": float(loss.detach()), "elapsed_s": time.perf_counter() - t0}
            if G > 1:  # TRL's name: groups whose completions all scored the same give no group-relative signal
                record["frac_reward_zero_std"] = float((nanstd(rewards.view(-1, G), 1) < 1e-6).float().mean())
            if grader is not None:
                record["grader_failures"] = failed
                record["grader_failures_total"] = int(grader.stats["failed"])
            if after_step is not None:
                record.update(after_step(step, policy) or {})
            append_jsonl(out / "metrics.jsonl", record)
            shown = "none scored" if mean_reward is None else f"{mean_reward:.4f}"
            log(f"step {step}: reward {shown}, kl {record['kl']:.4f}")
            if step == cfg.steps or (cfg.ckpt_every and step % cfg.ckpt_every == 0):
                if value_head is not None:  # written first: a complete checkpoint always has its value head
                    (out / "value_heads").mkdir(exist_ok=True)
                    blob = save({k: v.detach().contiguous() for k, v in value_head.state_dict().items()})
                    atomic_write_bytes(out / "value_heads" / f"step_{step:08d}.safetensors", blob)
                save_checkpoint(out, step, policy, optimizer, {"step": step})
    write_manifest(out, "rl", policy_run=cfg.policy_run, finished=True, steps=step)
    return out


def ppo_targets(cfg: RLConfig, scores: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor,
                values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(whitened advantages, returns) for PPO: per-token reward −kl_coef·(log π − log π_ref), the score added on
    each completion's last token, then GAE."""
    token_rewards = -cfg.kl_coef * (logp - ref_logp) * mask
    last = (mask.sum(1).long() - 1).clamp(min=0)
    token_rewards[torch.arange(len(scores)), last] += scores * (mask.sum(1) > 0)
    if cfg.whiten_rewards:
        token_rewards = whiten(token_rewards, mask, shift_mean=False) * mask
    advantages, returns = gae(token_rewards, values, mask, cfg.gamma, cfg.lam)
    return whiten(advantages, mask) * mask, returns


def main(argv: list[str]) -> int:
    import sys

    from augury.command import config_cli

    cfg = config_cli(RLConfig, argv, prog="augury rl", description=__doc__.split("\n")[0],
                     run_section="rl")
    try:
        train_rl(cfg)
    except (ValueError, AlignDataError) as err:
        raise UsageError(str(err)) from None
    except (RLDiverged, EndpointError) as err:
        print(f"augury rl: error: {err}", file=sys.stderr)
        return 1
    return 0
