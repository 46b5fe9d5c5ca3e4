"""The run folders post-training writes: ordinary augury runs (config.yaml with the model, tokenizer.json,
checkpoints, metrics.jsonl, manifest.json), so sampling, export and evaluation take them as they are.

    ckpt = open_output(out, resume, "sft")               # None: a new run; refuses a used folder without --resume
    if ckpt: check_resumed_settings(out, "sft", cfg, free=("out", "resume"))  # the same run, or refused
    with removed_on_failure(out):                        # a new run that fails before its first checkpoint goes
        start_output(out, base_run, model_cfg, "sft", cfg)   # tokenizer + config.yaml of a new run
        write_manifest(out, "sft", finished=False, base_run=...)

A multi-stage command (`augury align`, `augury rl-demo`) is a `StagedRun`: each stage in its own subfolder, skipped
when finished, recorded in the command's metrics.jsonl, and a manifest that says finished only at the end. A stage
given the settings it depends on (`Stage.config`, e.g. `settings(cfg, "seed", "rl")`) stores them in its record,
and a later run that finds the stage finished with other settings is refused before any stage runs
(`StageConfigError`), so a report never mixes stages made with different settings. Its `out` must be empty or
hold a run of the same command (`check_run_folder`).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path

import yaml

from augury.align.data import AlignDataError
from augury.io import append_jsonl, atomic_write_json, atomic_write_text, git_hash, not_a_folder, to_jsonable, utc_now


class RunFolderError(AlignDataError):
    """--out cannot take this run: a file, or a folder holding something other than a run of this kind."""


def manifest_kind(run: Path) -> str | None:
    """The `kind` in a run folder's manifest.json (pretraining runs have none: "train"); None if unreadable."""
    try:
        manifest = json.loads((run / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return manifest.get("kind", "train") if isinstance(manifest, dict) else None


def refuse_reward_model(run: str, flag: str, wanted: str) -> None:
    """AlignDataError when `run` is an augury rm run: its backbone was trained to score text and its LM head never
    trained, so it is no policy to fine-tune or improve; `wanted` says what to give instead."""
    if run and manifest_kind(Path(run)) == "reward_model":
        raise AlignDataError(f"{flag} {run} is a reward model (an augury rm run), not a policy: give {wanted}")


def check_base_run(run: str) -> None:
    """A `--base_run` ("" for none) must be an augury run (its tokenizer) and a policy, not a reward model."""
    if run and not (Path(run) / "tokenizer.json").is_file():
        raise ValueError(f"--base_run {run} is not an augury run (no tokenizer.json)")
    refuse_reward_model(run, "--base_run", "a pretrained run to fine-tune")


def check_run_folder(out: Path, kind: str) -> None:
    """Refuse an --out that is a file, or a non-empty folder whose manifest does not name a `kind` run (another
    command's run, or files that are no run at all), before anything is written into it."""
    if why := not_a_folder(out):
        raise RunFolderError(f"--out {why}")
    if not out.is_dir() or not any(out.iterdir()):
        return
    found = manifest_kind(out)
    if found != kind:
        holds = f"an augury {found} run" if found else "files that are not an augury run (no manifest.json)"
        raise RunFolderError(f"--out {out} holds {holds}, not an augury {kind} run: choose another --out")


def open_output(out: Path, resume: bool, kind: str) -> Path | None:
    """The newest intact checkpoint to resume from, or None for a new run in an empty (or missing) folder."""
    from augury.train.checkpoint import find_latest_checkpoint

    if why := not_a_folder(out):
        raise RunFolderError(f"--out {why}")
    if not resume:
        if out.exists() and any(out.iterdir()):
            if manifest_kind(out) == kind:
                raise AlignDataError(f"--out {out} exists and is not empty (pass --resume true to continue it)")
            check_run_folder(out, kind)  # another command's run, or other files: no --resume would help
        return None
    ckpt = find_latest_checkpoint(out)
    if ckpt is None:
        raise AlignDataError(f"--resume: {out} has no intact checkpoint")
    found = manifest_kind(out)
    if found != kind:
        raise RunFolderError(f"--resume: {out} holds {f'an augury {found} run' if found else 'no manifest.json'}, "
                             f"not an augury {kind} run")
    return ckpt


def _same(stored, now) -> bool:
    if stored == now:
        return True
    # a path given another way (relative, absolute, through a link) that names the same file
    return isinstance(stored, str) and isinstance(now, str) and bool(stored) and bool(now) and \
        Path(stored).resolve() == Path(now).resolve()


def check_resumed_settings(out: Path, section: str, cfg, free: tuple[str, ...]) -> None:
    """Refuse to resume the run in `out` with settings other than those its config.yaml stores under `section`,
    except the `free` ones (where output goes, how often to checkpoint: they do not make it another run)."""
    try:
        stored = (yaml.safe_load((out / "config.yaml").read_text()) or {}).get(section)
    except (OSError, yaml.YAMLError):
        stored = None
    if not isinstance(stored, dict):
        raise AlignDataError(f"--resume: {out}/config.yaml has no {section!r} settings to check the run against")
    now = json.loads(json.dumps(to_jsonable(asdict(cfg))))
    # a setting the stored file lacks (added since the run was made) is not checked
    diffs = [f"{key} {stored[key]!r} there, {value!r} now" for key, value in now.items()
             if key not in free and key in stored and not _same(stored[key], value)]
    if diffs:
        raise AlignDataError(f"--resume: {out} was made with other settings ({'; '.join(diffs)}): resuming "
                             f"would mix two runs; use the same settings, or a new --out")


def checkpoint_note(out: Path) -> str:
    """What a failed run leaves: its last checkpoint, or (none written yet) nothing, see `removed_on_failure`."""
    from augury.train.checkpoint import find_latest_checkpoint

    if out.is_dir() and find_latest_checkpoint(out) is not None:
        return f"the last checkpoint is kept in {out}"
    return f"no checkpoint was written, so {out} is removed: the same command can be run again"


@contextlib.contextmanager
def removed_on_failure(out: Path):
    """Around a new run: when it fails (or is interrupted) before its first checkpoint, what it wrote to `out` is
    removed (the folder too, when it was made here; an empty folder it was given is left empty), so the same
    command can simply be run again; a folder holding a checkpoint is left as it is."""
    from augury.train.checkpoint import remove_unstarted_run

    existed = out.is_dir()
    try:
        yield
    except BaseException:
        remove_unstarted_run(out, created=not existed)
        raise


def start_output(out: Path, source_run: str, model_cfg, section: str, cfg) -> None:
    """A new run's tokenizer (the source run's) and config.yaml (the model, and `cfg` under `section`)."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(source_run) / "tokenizer.json", out / "tokenizer.json")
    atomic_write_text(out / "config.yaml", yaml.safe_dump({"model": to_jsonable(model_cfg), section: asdict(cfg)},
                                                          sort_keys=False))


def write_manifest(out: Path, kind: str, **fields) -> None:
    atomic_write_json(out / "manifest.json", {"kind": kind, "created": utc_now(), "git": git_hash(), **fields})


class RunStopped(RuntimeError):
    """A started run stopped with a message for its user (a non-finite loss, say): `augury sft`, `rm` and `rl`
    print it as one error line; a multi-stage command reports it as its stage's `StageFailed`."""


class StageFailed(RuntimeError):
    """A stage stopped with an error of its own (a diverged run, a failing endpoint, bad data): the stages
    finished before it are kept, it is not marked finished, and the same command continues it."""

    def __init__(self, stage: str, err: BaseException):
        super().__init__(f"the {stage} stage stopped: {err}")


class StageConfigError(ValueError):
    """A finished stage of the run folder was made with other settings than the ones now asked for."""


@dataclass
class Stage:
    name: str
    done: Callable[[], bool]  # whether its output is finished (then it is skipped)
    run: Callable[[], dict | None]  # makes the output; returns extra fields for its metrics record
    config: dict | None = None  # the settings its output depends on (None: not recorded, not checked)


def settings(cfg, *names: str) -> dict:
    """The named settings of a config dataclass (dotted names for nested ones, a section as a whole dict), in
    the JSON form they are stored in: {"seed": 0, "rl": {...}, "sft.harmful_share": 0.5}."""
    out = {}
    for name in names:
        value = cfg
        for part in name.split("."):
            value = getattr(value, part)
        out[name] = asdict(value) if is_dataclass(value) else value
    return json.loads(json.dumps(to_jsonable(out)))


def _differences(stored: dict, now: dict, prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(stored) | set(now)):
        a, b = stored.get(key, "unset"), now.get(key, "unset")
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key} {a!r} there, {b!r} now")
    return diffs


class StagedRun:
    """A command made of stages run in order; `kind` names it in the manifest. Subclasses set `cfg` and `out`."""

    kind = ""

    def __init__(self, cfg, log=print):
        self.cfg, self.log, self.out = cfg, log, Path(cfg.out)
        self.data = self.out / "data"

    @property
    def base_run(self) -> Path:
        """The run SFT starts from: the config's `base_run`, else this run's own `pretrain` stage."""
        given = getattr(self.cfg, "base_run", "")
        return Path(given) if given else self.out / "pretrain"

    def claim_output(self) -> None:
        """Make `out`, after refusing a file or a folder that holds anything but a run of this kind."""
        check_run_folder(self.out, self.kind)
        self.out.mkdir(parents=True, exist_ok=True)

    def stage(self, name: str, done, run, config: dict | None = None) -> None:
        """Run a stage unless `done()`; record it (and `config`, when given) in metrics.jsonl when it finishes."""
        if done():
            self.log(f"[{name}] already finished")
            return
        self.log(f"[{name}] running")
        t0 = time.perf_counter()
        try:
            record = run() or {}
        except RunStopped as err:
            raise StageFailed(name, err) from None
        extra = {} if config is None else {"config": config}
        append_jsonl(self.out / "metrics.jsonl", {"stage": name, "seconds": time.perf_counter() - t0,
                                                  "finished": utc_now(), **record, **extra})

    def run_stages(self, stages: list[Stage]) -> None:
        """Check every finished stage against its settings (a mismatch is refused before anything is written),
        then run the unfinished ones in order; the manifest says finished only after the last."""
        self.check_finished(stages)
        self.write_manifest(finished=False)
        for s in stages:
            self.stage(s.name, s.done, s.run, s.config)
        self.write_manifest(finished=True)

    def check_finished(self, stages: list[Stage]) -> None:
        from augury.align.data import read_jsonl

        path = self.out / "metrics.jsonl"
        records = {r["stage"]: r for r in (read_jsonl(path) if path.is_file() else []) if r and "stage" in r}
        for s in stages:
            if s.config is None or not s.done():
                continue
            stored = records.get(s.name, {}).get("config")
            if stored is None:  # finished before settings were recorded, or its record was lost
                self.log(f"[{s.name}] finished without a record of its settings: not checked")
                continue
            diffs = _differences(stored, s.config)
            if diffs:
                raise StageConfigError(
                    f"{self.out}: the finished stage {s.name!r} was made with other settings "
                    f"({'; '.join(diffs)}): use a new --out, or delete that stage's output and the stages "
                    f"after it to redo them")

    def write_manifest(self, finished: bool) -> None:
        atomic_write_json(self.out / "manifest.json", {"kind": self.kind, "created": utc_now(), "git": git_hash(),
                                                        "config": asdict(self.cfg), "finished": finished})


def run_command(staged: StagedRun, prog: str) -> int:
    """`augury CMD`'s exit status for a staged run: settings or a folder refused before any stage writes are a
    usage error (one line, status 2); a stage that stopped is one error line and status 1."""
    import sys

    from augury.errors import UsageError
    from augury.train.config import TrainConfigError

    try:
        staged.run()
    except (StageConfigError, RunFolderError, TrainConfigError) as err:
        raise UsageError(str(err)) from None
    except StageFailed as err:  # the stages finished before it are kept; the same command continues it
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    return 0


def stage_status(run: Path):
    """A stage folder's manifest: `finished` (post-training runs) or `status` (pretraining); None if absent."""
    try:
        manifest = json.loads((run / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return manifest.get("status") if "status" in manifest else manifest.get("finished")


def resumable(run: Path) -> bool:
    """True when `run` holds a checkpoint to continue from; a folder without one is cleared for a fresh start."""
    from augury.train.checkpoint import find_latest_checkpoint

    if not run.exists():
        return False
    if find_latest_checkpoint(run) is not None:
        return True
    shutil.rmtree(run)
    return False


def last_metric(run: Path, key: str):
    """The last value of `key` in a run's metrics.jsonl, or None."""
    from augury.align.data import read_jsonl

    values = [r[key] for r in read_jsonl(run / "metrics.jsonl") if r and key in r]
    return values[-1] if values else None
