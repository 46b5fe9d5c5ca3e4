"""`augury align`: the GPT-4 report's safety pipeline end to end, on a CPU, with one report over its three models.

    augury align --preset cpu-demo --seed 0 --out runs/align-s0      # pretrain → SFT → RM → RL (RM + RBRM) → report
    augury align --config configs/align/cpu-demo.yaml --rl.steps 20  # the same preset with an override
    augury align --preset cpu-demo --base_run runs/my-base             # start from a run pretrained elsewhere

Stages, each in its own subfolder of `out` and each skipped when already finished (an interrupted stage resumes from
its last checkpoint, or restarts when it has none): `data` (the generated files every later stage reads), `grader`
(the offline proposition classifier, trained on the RBR gold set), `pretrain` (a small model on standard-library
docstrings and comments plus HH-RLHF's helpful conversations; `augury train`; skipped with `--base_run`), `sft` (those
conversations, helpful answers to safe requests and refusals in mixed styles; `augury sft`), `rm` (pairs from HH-RLHF
and from the refusal rubric; `augury rm`), `rl` (GRPO against the reward model plus the rubric's class rewards on
prompts tagged harmful or safe; `augury rl`), `eval` (per model: safety rates on held-out prompt families, AdvBench
and XSTest; reward-model win rate against SFT; multiple-choice accuracy and ECE; held-out loss) and `report`
(report.md and results.json). `metrics.jsonl` gets one record per finished stage; `manifest.json` says `finished:
true` only when the report is written. The settings (AlignConfig, a section per stage) and their checks are
pipeline_config.py's.
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

from augury.align.pipeline_config import (
    RL_GRADER,
    RL_RUBRIC,
    AlignConfig,
    RLSettings,  # noqa: F401  (re-exported for older imports)
    rl_config,
)
from augury.align.runs import Stage, StagedRun, last_metric, resumable, settings, stage_status
from augury.io import atomic_write_json, atomic_write_text

PRESETS = Path(__file__).resolve().parents[2] / "configs" / "align"
MODELS = ("base", "sft", "rlhf")


class Pipeline(StagedRun):
    kind = "align"

    def model_run(self, name: str) -> Path:
        """The run folder of one of the evaluated MODELS."""
        return {"base": self.base_run, "sft": self.out / "sft", "rlhf": self.out / "rl"}[name]

    def run(self) -> Path:
        cfg = self.cfg
        cfg.validate()
        self.claim_output()
        # each stage's settings: its own section and the seed (the data's: what the generated files depend on);
        # a later stage's output also depends on the earlier ones', which are checked in their own right
        cfg_of = functools.partial(settings, cfg)
        stages = [
            Stage("data", lambda: (self.data / "manifest.json").is_file(), self.make_data,
                  cfg_of("seed", "held_out", "hh_held_out", "pretrain.stdlib_bytes", "sft.hh_conversations",
                         "sft.pretraining_documents", "sft.harmful_share", "sft.desired_style_share", "rm.hh_pairs")),
            Stage("grader", lambda: (self.out / "grader" / "report.json").is_file(), self.train_grader, {}),
        ]
        if not cfg.base_run:
            stages.append(Stage("pretrain", lambda: stage_status(self.out / "pretrain") == "complete", self.pretrain,
                                cfg_of("seed", "pretrain")))
        # the base is one of SFT's settings only when given, so runs that pretrained their own still resume
        stages += [
            Stage("sft", lambda: stage_status(self.out / "sft") is True, self.sft,
                  cfg_of("seed", "sft", *(["base_run"] if cfg.base_run else []))),
            Stage("rm", lambda: stage_status(self.out / "rm") is True, self.reward_model, cfg_of("seed", "rm")),
            Stage("rl", lambda: stage_status(self.out / "rl") is True, self.rl, cfg_of("seed", "rl")),
        ]
        for name in ("sft", "base", "rlhf"):  # SFT first: the others' win rates are against its replies
            stages.append(Stage(f"eval-{name}", lambda n=name: (self.out / "eval" / f"{n}.json").is_file(),
                                lambda n=name: self.evaluate(n), cfg_of("held_out", "eval")))
        stages.append(Stage("report", lambda: (self.out / "report.md").is_file(), self.report, {}))
        self.run_stages(stages)
        return self.out

    # -- stages ---------------------------------------------------------------------------------------------
    def make_data(self) -> dict:
        from augury.align import safety_data as sd
        from augury.align.data import hh_rlhf_rows, split_held_out

        cfg = self.cfg
        rows, _ = hh_rlhf_rows(Path(cfg.shared_data()) / "hh-rlhf/helpful-base/test.jsonl.gz")
        train, held = split_held_out(rows, cfg.hh_held_out)
        conversations = [r["prompt"] + r["chosen"] for r in train]
        short = [c for c in conversations if len(json.dumps(c)) < 700]
        split = sd.family_split(cfg.held_out)
        d = cfg.sft.desired_style_share
        styles = {"desired": d, "judgemental": (1 - d) * 0.35, "preachy": (1 - d) * 0.35, "rambling": (1 - d) * 0.3}
        sft_rows = [{"messages": c} for c in short[:cfg.sft.hh_conversations]]
        sft_rows += sd.sft_safety_rows(split, cfg.seed, cfg.sft.harmful_share, styles)
        sft_rows += [{"text": sd.transcript(c)}
                     for c in short[cfg.sft.hh_conversations:][:cfg.sft.pretraining_documents]]
        short_pairs = [r for r in train if len(json.dumps(r)) < 900][:cfg.rm.hh_pairs]
        files = {
            "pretrain.jsonl": [{"text": t} for t in sd.pretraining_documents(conversations, cfg.pretrain.stdlib_bytes)],
            "sft.jsonl": sft_rows,
            "prefs.jsonl": short_pairs + sd.preference_rows(split, cfg.seed),
            "rl_prompts.jsonl": sd.rl_prompt_rows(split),
            "held_out_conversations.jsonl": [{"messages": r["prompt"] + r["chosen"]} for r in held],
        }
        self.data.mkdir(parents=True, exist_ok=True)
        for name, file_rows in files.items():
            atomic_write_text(self.data / name, "".join(json.dumps(r) + "\n" for r in file_rows))
        counts = {name: len(r) for name, r in files.items()}
        families = {side: [f.name for f in getattr(split, side)]
                    for side in ("train_harmful", "held_harmful", "train_safe", "held_safe")}
        atomic_write_json(self.data / "manifest.json", {"rows": counts, "families": families})
        return {"rows": counts}

    def train_grader(self) -> dict:
        from augury.safety.grader import grader

        report = grader(data=str(Path(self.cfg.shared_data()) / "rbr-gold"), out=str(self.out / "grader"))
        return {"grader_mean_accuracy": report["mean_accuracy"]}

    def pretrain(self) -> dict:
        from augury.data import DataConfig
        from augury.model import ModelConfig
        from augury.train.config import OptimConfig, TrainConfig
        from augury.train.trainer import train

        p = self.cfg.pretrain
        tcfg = TrainConfig(out=str(self.out / "pretrain"), model=ModelConfig(depth=p.depth, head_dim=32),
                           data=DataConfig(source=str(self.data / "pretrain.jsonl"), vocab_size=p.vocab_size,
                                           eval_data_dir=self.cfg.shared_data()),
                           optim=OptimConfig(lr=p.lr), seq_len=p.seq_len, batch_size=p.batch_size,
                           tokens=p.tokens, seed=self.cfg.seed, eval_every=0, ckpt_every=200, log_every=50,
                           progress=False)
        summary = train(tcfg, resume="auto", log=self.log)
        return {"val_loss": summary.get("final_val_loss")}

    def sft(self) -> dict:
        from augury.align.sft import SFTConfig, train_sft

        s, out = self.cfg.sft, self.out / "sft"
        train_sft(SFTConfig(base_run=str(self.base_run), data=str(self.data / "sft.jsonl"), out=str(out),
                            steps=s.steps, batch_size=s.batch_size, micro_batch_size=s.batch_size, lr=s.lr,
                            eval_every=0, ckpt_every=50, seed=self.cfg.seed, resume=resumable(out)), log=self.log)
        return {"val_loss": last_metric(out, "val_loss")}

    def reward_model(self) -> dict:
        from augury.align.rm import RMConfig, train_rm

        r, out = self.cfg.rm, self.out / "rm"
        if out.exists():  # an unfinished reward model is retrained (it is written once, at the end)
            shutil.rmtree(out)
        train_rm(RMConfig(base_run=str(self.out / "sft"), data=str(self.data / "prefs.jsonl"), out=str(out),
                          steps=r.steps, batch_size=r.batch_size, lr=r.lr, seed=self.cfg.seed), log=self.log)
        return {"held_out_accuracy": json.loads((out / "manifest.json").read_text())["held_out_accuracy"]}

    def rl(self) -> dict:
        from augury.align.rl import RL_FAILURES, train_rl
        from augury.align.runs import StageFailed

        try:
            train_rl(rl_config(self.cfg, resume=resumable(self.out / "rl")), log=self.log)
        except RL_FAILURES as err:
            raise StageFailed("rl", err) from None
        return {"final_reward": last_metric(self.out / "rl", "reward")}

    def evaluate(self, name: str) -> dict:
        from augury.align import safety_eval as ev
        from augury.align.data import read_jsonl
        from augury.align.rm import load_reward_model
        from augury.align.safety_data import family_split, transcript
        from augury.align.safety_separation import refusal_separation
        from augury.model.run import load_run
        from augury.safety.graders import load_grader

        cfg, e = self.cfg, self.cfg.eval
        split = family_split(cfg.held_out)
        prompts = ev.held_out_prompts(split)
        external = ev.advbench_prompts(cfg.shared_data(), e.advbench) if e.advbench else []
        external += ev.xstest_prompts(cfg.shared_data()) if e.xstest else []
        dropped = ev.near_duplicates([r for f in split.train_harmful + split.train_safe for r in f.requests], external)
        prompts += [p for p in external if p.id not in dropped]
        model, tok, _ = load_run(self.model_run(name))
        replies = ev.chat_replies(model, tok, [p.text for p in prompts], e.max_tokens)
        (self.out / "eval").mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out / "eval" / f"{name}_replies.jsonl", "".join(
            json.dumps({"id": p.id, "kind": p.kind, "category": p.category, "reply": r}) + "\n"
            for p, r in zip(prompts, replies)))
        rules = load_grader(RL_GRADER, RL_RUBRIC)
        verdicts = {"string_match": ev.string_match_verdicts(prompts, replies, rules),
                    "classifier": ev.grader_verdicts(load_grader(f"offline:{self.out / 'grader' / 'grader.json'}",
                                                              "default"), prompts, replies)}
        result = {"model": name, "safety": ev.safety_rates(prompts, verdicts),
                  "rubric_classes": ev.class_counts(prompts, replies, rules),
                  "distinct_replies": ev.distinct_replies(prompts, replies),
                  "dropped_near_duplicates": sorted(dropped)}
        sft_file = self.out / "eval" / "sft_replies.jsonl"  # evaluated first
        if sft_file.is_file():
            sft_replies = {r["id"]: r["reply"] for r in read_jsonl(sft_file)}
            pairs = [(p, r) for p, r in zip(prompts, replies) if p.source == "held-out"]
            rm = load_reward_model(self.out / "rm")
            result["rm_win_rate_vs_sft"] = ev.rm_win_rate(rm, [p for p, _ in pairs], [r for _, r in pairs],
                                                       [sft_replies[p.id] for p, _ in pairs])
        held = [p for p in prompts if p.source == "held-out"]
        result["separation"] = {"held-out": refusal_separation(model, tok, held),
                                "training": refusal_separation(model, tok, ev.training_prompts(split))}
        conversations = [r["messages"] for r in read_jsonl(self.data / "held_out_conversations.jsonl")]
        result["multiple_choice"] = ev.multiple_choice(model, tok, ev.mc_questions(conversations, e.mc_questions, 16))
        result["held_out_loss"] = ev.held_out_loss(model, tok, [transcript(c) for c in conversations[:e.loss_texts]])
        atomic_write_json(self.out / "eval" / f"{name}.json", result)
        return {"model": name, "held-out": result["safety"]["held-out/string_match"]}

    def report(self) -> dict:
        from augury.align.report import render_report, rl_reach
        from augury.align.safety_data import family_split
        from augury.align.safety_separation import separation_references
        from augury.io import read_jsonl

        results = {n: json.loads((self.out / "eval" / f"{n}.json").read_text()) for n in MODELS}
        reference = separation_references(family_split(self.cfg.held_out),
                                          results["sft"]["safety"]["held-out/string_match"])
        rl_records = self.out / "rl" / "metrics.jsonl"
        reach = rl_reach(read_jsonl(rl_records)) if rl_records.is_file() else None
        text, table = render_report(results, self.cfg, json.loads((self.data / "manifest.json").read_text()),
                                    reference, reach)
        atomic_write_json(self.out / "results.json", {"models": results, "table": table, "reference": reference,
                                                      "rl_reach": reach})
        atomic_write_text(self.out / "report.md", text)
        self.log(text)
        return {"table": table}



def main(argv: list[str]) -> int:
    from augury.align.runs import run_command
    from augury.command import config_cli, preset_option, spaced_option
    from augury.errors import UsageError

    # configs/align also holds other commands' presets (augury sft's example, augury rl-demo's)
    names = sorted(p.stem for p in PRESETS.glob("*.yaml") if p.stem != "sft" and not p.stem.startswith("rl-demo-"))
    argv = spaced_option(list(argv), "--preset")
    if "--preset" in argv:
        i = argv.index("--preset")
        if i + 1 >= len(argv):
            raise UsageError("--preset needs a name (e.g. cpu-demo)")
        path = PRESETS / f"{argv[i + 1]}.yaml"
        if argv[i + 1] not in names:
            raise UsageError(f"no preset {argv[i + 1]!r} (presets: {', '.join(names)})")
        argv[i:i + 2] = ["--config", str(path)]
    cfg = config_cli(AlignConfig, argv, prog="augury align", description=__doc__.split("\n")[0],
                     listed=preset_option(names, "configs/align/NAME.yaml"))
    try:
        cfg.validate()
    except ValueError as err:
        raise UsageError(str(err)) from None
    return run_command(Pipeline(cfg), "augury align")
