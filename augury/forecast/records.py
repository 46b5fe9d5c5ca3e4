"""Typed records of a forecast: forecast.json and result.json as dataclasses, and the checked reading and writing
of those files. The schema is documented in docs/forecast_outputs.md; every JSON key is spelled here and nowhere
else in the package.

    from augury.forecast.records import Forecast, read_forecast, read_result
    forecast = read_forecast("runs/forecast-cpu-demo/forecast.json")   # checks the version and the sha256
    forecast.loss.predicted, forecast.capability.predicted, read_result(path).loss.actual

`to_json()` gives the file's content (fields in the documented order; an optional field that is unset is left out)
and `from_json(content)` reads it back, ignoring fields it does not know (a newer minor version may add some).
`write_forecast` and `load_forecast` handle forecast.json's tamper check on the plain content.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from augury.io import atomic_write_json, to_jsonable, utc_now

# forecast.json's and result.json's format (docs/forecast_outputs.md): the major number changes when a field is
# renamed, removed or changes meaning, the minor number when one is added. Files without the field are "1.0".
SCHEMA_VERSION = "1.2"


class UnknownSchemaVersion(ValueError):
    """forecast.json or result.json was written by a version of augury whose format this one cannot read."""


class ForecastTampered(RuntimeError):
    """forecast.json does not match its own sha256, or not the sha256 its folder's plan.json recorded when it was
    registered: it was changed after pre-registration."""


class AlreadyRegistered(FileExistsError):
    """forecast.json exists (another `augury forecast` on the folder may have registered it meanwhile): a
    pre-registered forecast is never rewritten."""


def _optional(**kwargs):
    """A field left out of the JSON while it is None."""
    return field(default=None, metadata={"optional": True, **kwargs})


def _keyed(key: str, **kwargs):
    """A field whose JSON key differs from its name (a name that says what it is in code, the documented key on
    disk)."""
    return field(metadata={"key": key}, **kwargs)


class Record:
    """to_json / from_json for the dataclasses below (nested records, lists of records, optional fields)."""

    def to_json(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.metadata.get("optional"):
                continue
            out[f.metadata.get("key", f.name)] = _to_json(value)
        return out

    @classmethod
    def from_json(cls, content: dict):
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):
            key = f.metadata.get("key", f.name)
            if key in content:
                kwargs[f.name] = _from_json(hints[f.name], content[key])
        return cls(**kwargs)


def _to_json(value):
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value


def _from_json(hint, value):
    if value is None:
        return None
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    for option in options:
        if isinstance(option, type) and issubclass(option, Record) and isinstance(value, dict):
            return option.from_json(value)
        if typing.get_origin(option) is list and isinstance(value, list):
            (item,) = typing.get_args(option) or (typing.Any,)
            return [_from_json(item, v) for v in value]
    return value


# ---- forecast.json ---------------------------------------------------------------------------------------------


@dataclass
class LossForecast(Record):
    """A fitted loss law's forecast of the target with its checks (forecast.json `loss`, and `text` with the
    held-out text fields set)."""

    predicted: float  # nats/token
    interval: list[float]  # [low, high] at `level`
    level: float
    interval_method: Literal["bootstrap", "prediction", "random-effects"]
    extrapolation_decades: float
    law: dict  # the fitted law (augury.scaling's FitResult.to_json)
    residuals: dict[str, float]  # per rung: relative residual from the fitted curve
    local_slopes: list[float]
    backtest_largest_rung: dict | None  # held_out, predicted, actual, rel_error, interval, covered, status
    law_form_sensitivity: dict
    flags: list[str]  # why the forecast is not reliable, one sentence each
    reliable: bool
    folder: str | None = _optional()  # held-out text only: the folder, its rung rows, the plot's y label
    rungs: list[dict] | None = _optional()
    y_label: str | None = _optional()
    # held-out text only: sha256 of the token ids scored (int64, little-endian) and their number
    tokens_sha256: str | None = _optional()
    tokens: int | None = _optional()

    def flag(self, message: str) -> None:
        self.flags.append(message)
        self.reliable = False


@dataclass
class CapabilityBucket(Record):
    """One difficulty bucket of a capability fit: its kept problems and its α·C^(−k) law's forecast."""

    bucket: int
    problems: list[str]
    n_problems: int
    small_run_pass_rate: float
    predicted: float  # mean −log pass rate at the target
    interval: list[float]
    params: dict[str, float]
    k_interval: list[float | None]


@dataclass
class CapabilityFold(Record):
    """One fit of the GPT-4 report's capability protocol (one cross-fitting fold)."""

    predicted: float = _keyed("predicted_mean_neg_log_pass_rate")  # bucket-weighted mean −log pass rate
    interval: list[float] = _keyed("interval_bucket_weighted")
    buckets: list[CapabilityBucket] = field(default_factory=list)
    kept_problems: int = 0
    dropped_problems: int = 0
    backtest_largest_rung: dict | None = None  # held_out, predicted, actual, rel_error (or error)
    flags: list[str] = field(default_factory=list)
    reliable: bool = True
    flag_kinds: list[str] = field(default_factory=list)  # per flag: fit, floor, backtest or k:<bucket>
    per_run: dict | None = _optional()  # {run: {flops, compute, buckets: [value per bucket]}}
    fold: int | None = _optional()
    select_replicas: list[int] | None = _optional()
    estimate_replicas: list[int] | None = _optional()

    def kept(self) -> list[str]:
        return [p for b in self.buckets for p in b.problems]


@dataclass
class CapabilityForecast(Record):
    """forecast.json `capability`: the mean of the folds' fits, and the checks of that mean."""

    status: Literal["ok", "not-forecastable"]
    predicted: float | None = _keyed("predicted_mean_neg_log_pass_rate")  # None when not forecastable
    interval: list[float] | None = _keyed("interval_bucket_weighted")
    cross_fitted: bool = False
    folds: list[CapabilityFold] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    reliable: bool = True
    n_problems: int = 0
    samples: int = 0
    temperature: float = 1.0
    kind: Literal["line", "span", "copy"] = "line"
    reason: str | None = _optional()  # not-forecastable: why
    unsupported_predicted: float | None = _optional()  # not-forecastable: what the fits would give

    @classmethod
    def from_json(cls, content: dict):
        content = {"status": "ok", **content}  # registered before the status existed
        if "folds" not in content:  # registered before cross-fitting: the forecast is its own single fold
            content = {**content, "folds": [dict(content)]}
        return super().from_json(content)


@dataclass
class Forecast(Record):
    """forecast.json: what was pre-registered before the target started."""

    name: str
    target: dict  # the target's RunPlan fields, role "target", compute
    ladder: list[dict]  # one row per rung: RunPlan fields, loss, bpb, epochs, seconds, compute, [seed_losses]
    loss: LossForecast
    compute: Literal["flops", "non-embedding"] = "flops"  # the laws' x axis
    compute_definition: str = "C = training FLOPs"
    data_coverage: dict | None = None  # train_tokens, share: {run: share of the training split}
    data_sha256: str | None = _optional()  # the prepared data the ladder trained on (folder.data_sha256)
    capability: CapabilityForecast | None = _optional()
    capability_skipped: str | None = _optional()  # why no capability forecast was possible
    text: LossForecast | None = _optional()
    text_ladder: list[dict] | None = _optional()
    protocol: str = "docs/forecast.md"
    N_definition: str = "matmul parameters (incl. output layer)"
    schema_version: str = SCHEMA_VERSION
    registered_at: str | None = _optional()
    sha256: str | None = _optional()

    # the documented order on disk (docs/forecast_outputs.md)
    _ORDER = ("schema_version", "name", "protocol", "target", "ladder", "compute", "compute_definition",
              "N_definition", "loss", "data_coverage", "data_sha256", "capability", "capability_skipped", "text",
              "text_ladder", "registered_at", "sha256")

    def to_json(self) -> dict:
        content = super().to_json()
        return {k: content[k] for k in self._ORDER if k in content}


# ---- result.json -----------------------------------------------------------------------------------------------


@dataclass
class Verification(Record):
    """A forecast number against the target's measured one (result.json `loss` and `text`)."""

    predicted: float
    interval: list[float]
    actual: float
    rel_error: float | None  # predicted / actual − 1; null when the actual is 0 (rel_error_reason)
    covered: bool  # actual inside the interval
    forecast_flagged: bool | None = _optional()  # the forecast was not reliable (loss only)
    rel_error_reason: str | None = _optional()  # why rel_error is null


@dataclass
class CapabilityFoldVerification(Record):
    predicted: float
    actual: float
    actual_buckets: list[float]
    predicted_buckets: list[float]
    unsolved_kept_problems: int


@dataclass
class CapabilityVerification(Record):
    """result.json `capability`: the target scored on each fold's kept problems, their mean against the forecast."""

    status: Literal["ok", "not-forecastable"]
    predicted: float | None
    actual: float
    rel_error: float | None  # null when not forecastable, or when the actual is 0 (rel_error_reason)
    folds: list[CapabilityFoldVerification]
    forecast_flagged: bool
    note: str = ("mean -log pass rate over the problems every rung solved at least once (per fold: kept on one "
                 "half of the rungs' samples), averaged over the folds; a problem the target never solved counts "
                 "at pass rate 1/(2n)")
    rel_error_reason: str | None = _optional()  # why rel_error is null although a forecast was registered

    @classmethod
    def from_json(cls, content: dict):
        return super().from_json({"status": "ok", **content})  # verified before the status existed


@dataclass
class Result(Record):
    """result.json: the trained target measured against the pre-registered forecast."""

    name: str
    forecast_sha256: str
    verified_at: str
    loss: Verification
    target_run: dict  # the target's ladder-style row, fraction 1.0
    largest_rung_fraction: float
    capability: CapabilityVerification | None = _optional()
    text: Verification | None = _optional()
    # seconds per stage: the runs' training time as they recorded it (also when trained by an earlier invocation),
    # the other stages this invocation's
    timings: dict[str, float] = field(default_factory=dict)
    # the error line of each target launch that failed and was launched again (torchrun); absent when none did
    target_failed_launches: list[str] | None = _optional()
    schema_version: str = SCHEMA_VERSION

    def to_json(self) -> dict:
        content = super().to_json()
        return {"schema_version": content.pop("schema_version"), **content}


# ---- files -----------------------------------------------------------------------------------------------------


def check_schema_version(content: dict, path: str | Path) -> None:
    """UnknownSchemaVersion unless `content`'s major schema version is the one this code reads."""
    version = str(content.get("schema_version", "1.0"))
    if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise UnknownSchemaVersion(f"{path}: schema_version {version} is not readable by this augury (it reads "
                                   f"{SCHEMA_VERSION.split('.')[0]}.x; docs/forecast_outputs.md)")


def _canonical(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def content_sha256(content: dict) -> str:
    return hashlib.sha256(_canonical({k: v for k, v in content.items() if k != "sha256"})).hexdigest()


def write_forecast(path: str | Path, content: dict) -> dict:
    """Write forecast.json atomically with a timestamp and the sha256 of its content; refuses to overwrite, also
    a forecast.json another process writes while this one is fitting (AlreadyRegistered)."""
    path = Path(path)
    if path.exists():
        raise AlreadyRegistered(f"{path} exists: a pre-registered forecast is never rewritten")
    # the sha256 is taken over the values as written (a NaN is written as null, an infinity as ±1e308), so that
    # reading the file back gives the same sha256
    content = to_jsonable({"schema_version": SCHEMA_VERSION, **copy.deepcopy(content), "registered_at": utc_now()})
    content["sha256"] = content_sha256(content)
    try:
        # exclusive: a second `augury forecast` on the same folder that passed the check above while the first was
        # fitting must not replace the first's registration
        atomic_write_json(path, content, exclusive=True)
    except FileExistsError:
        raise AlreadyRegistered(f"{path} was registered meanwhile by another process (another `augury forecast` on "
                              f"this folder?): a pre-registered forecast is never rewritten; rerun once the other "
                              f"has finished to use it") from None
    return content


def load_forecast(path: str | Path) -> dict:
    """Read forecast.json and check its sha256; ForecastTampered if the content changed since registration (or is
    no longer a JSON object at all)."""
    try:
        content = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ForecastTampered(f"{path}: not valid JSON ({err}): the pre-registered forecast was damaged or edited; "
                               f"restore it, or start a new forecast in another folder") from None
    if not isinstance(content, dict):
        raise ForecastTampered(f"{path}: not a JSON object: the pre-registered forecast was replaced; restore it, or "
                               f"start a new forecast in another folder")
    check_schema_version(content, path)
    if content.get("sha256") != content_sha256(content):
        raise ForecastTampered(f"{path}: its content no longer matches its sha256 {content.get('sha256')!r}: the "
                               f"pre-registered forecast was edited; start a new forecast in another folder")
    return content


def register_forecast(path: str | Path, forecast: Forecast) -> Forecast:
    """Write `forecast` as forecast.json (write_forecast); the registered record, with its time and sha256."""
    return Forecast.from_json(write_forecast(path, forecast.to_json()))


def read_forecast(path: str | Path) -> Forecast:
    """forecast.json as a Forecast, its version and sha256 checked (load_forecast)."""
    return Forecast.from_json(load_forecast(path))


def read_result(path: str | Path) -> Result:
    """result.json as a Result, its version checked."""
    content = json.loads(Path(path).read_text())
    check_schema_version(content, path)
    return Result.from_json(content)


def write_result(path: str | Path, result: Result) -> None:
    atomic_write_json(path, result.to_json())
