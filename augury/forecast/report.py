"""The forecast's report: loss-vs-compute plot (GPT-4 report Fig. 1), capability plot (Fig. 2), rung table and
timings, as `report.md` (images beside it) and a self-contained `report.html` (images embedded as base64).

    write_report(out_dir, forecast, result)      # the Forecast and Result records (records.py)
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from augury.forecast.ladder import format_seconds
from augury.forecast.records import CapabilityFold, CapabilityFoldVerification, Forecast, Result
from augury.io import atomic_write_bytes, atomic_write_text


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def _interval_bar(ax, predicted: float, interval: list[float], color: str, **point) -> None:
    """The forecast at the target (x = 1) as a point and its interval as a bar from low to high, each as
    registered: a percentile interval of bootstrap draws need not contain the full-data fit's point, and
    matplotlib refuses the negative error bar that would give."""
    lo, hi = interval
    ax.errorbar([1.0], [(lo + hi) / 2], yerr=[(hi - lo) / 2], fmt="none", ecolor=color, capsize=4, zorder=4)
    ax.plot([1.0], [predicted], "o", color=color, zorder=4, **point)


def _compute_label(forecast: Forecast) -> str:
    if forecast.compute == "non-embedding":
        return "non-embedding compute 6·N·D (fraction of the target's)"
    return "training compute (fraction of the target's)"


def plot_loss(forecast: Forecast, result: Result | None, path: Path, key: str = "loss",
              title: str | None = None) -> None:
    """Rung losses, the fitted L(C) = a·C^b (+ c), the pre-registered point with its interval, the actual target.
    `key`: "loss" (the validation loss) or "text" (the held-out text folder's)."""
    plt = _plt()
    sec = forecast.text if key == "text" else forecast.loss
    p = {k: v["value"] for k, v in sec.law["parameters"].items()}
    ct = forecast.target.get("compute", forecast.target["flops"])
    rungs = (forecast.text_ladder if key == "text" else None) or forecast.ladder
    x = np.array([r.get("compute", r["flops"]) for r in rungs]) / ct
    y = np.array([r["loss"] for r in rungs])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = np.geomspace(x.min() / 1.5, 2.0, 200)
    c = p.get("c", 0.0)  # power-loss has no irreducible term
    ax.plot(xs, p["a"] * (xs * ct) ** p["b"] + c, "--", color="C0", lw=1.2,
            label=f"fit: L = {p['a']:.3g}·C^{p['b']:.3f}" + (f" + {c:.3g}" if "c" in p else ""))
    ax.scatter(x, y, color="0.35", zorder=3, label="ladder rungs (fitted)")
    _interval_bar(ax, sec.predicted, sec.interval, "C2", label=f"pre-registered forecast ({sec.level:.0%} interval)")
    checked = getattr(result, key, None) if result is not None else None
    if checked is not None:
        actual = checked.actual
        ax.scatter([1.0], [actual], marker="*", s=160, color="C3", zorder=5, label="target (actual)")
    ax.set_xscale("log")
    ax.set_xlabel(_compute_label(forecast))
    ax.set_ylabel(sec.y_label or "validation loss (nats/token)")
    ax.set_title(title or "Loss forecast")
    if not sec.reliable:
        ax.text(0.02, 0.03, "FLAGGED: see the checks in the report", transform=ax.transAxes, color="C3",
                fontsize=9, weight="bold")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    _save(fig, path)
    plt.close(fig)


def capability_folds(forecast: Forecast, result: Result | None
                     ) -> list[tuple[CapabilityFold, CapabilityFoldVerification | None]]:
    """(forecast fold, verified fold or None) per cross-fitting fold."""
    folds = forecast.capability.folds
    verified = result.capability if result is not None else None
    return list(zip(folds, verified.folds if verified is not None else [None] * len(folds)))


def plot_capability(forecast: Forecast, result: Result | None, path: Path) -> None:
    """Per fold and difficulty bucket: mean −log pass rate of the rungs vs compute, the fitted α·C^(−k), the
    forecast and the actual."""
    plt = _plt()
    cap = forecast.capability
    ct = forecast.target.get("compute", forecast.target["flops"])
    folds = capability_folds(forecast, result)
    fig, axes = plt.subplots(1, len(folds), figsize=(6 * len(folds), 4.5), sharey=True, squeeze=False)
    for ax, (fold, checked) in zip(axes[0], folds):
        data = fold.per_run  # {run: {flops, compute, buckets: [value per bucket]}}
        cx = np.array([v.get("compute", v["flops"]) for v in data.values()])
        xs = np.geomspace(cx.min() / ct / 1.5, 2.0, 100)
        actual = checked.actual_buckets if checked else None
        for i, b in enumerate(fold.buckets):
            color = f"C{i}"
            y = np.array([v["buckets"][i] for v in data.values()])
            ax.scatter(cx / ct, y, color=color, zorder=3, label=f"bucket {b.bucket} ({b.n_problems} problems)")
            a, k = b.params["alpha"], b.params["k"]
            ax.plot(xs, a * (xs * ct) ** (-k), "--", color=color, lw=1)
            _interval_bar(ax, b.predicted, b.interval, color, mfc="white")
            if actual is not None:
                ax.scatter([1.0], [actual[i]], marker="*", s=140, color=color, edgecolor="k", zorder=5)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(_compute_label(forecast))
        if fold.fold is not None and len(folds) > 1:
            ax.set_title(f"fold {fold.fold}: problems kept on replicas {fold.select_replicas}, rates from "
                         f"{fold.estimate_replicas}", fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("mean −log pass rate")
    if cap.predicted is None:  # the fits were refused: their points are no forecasts
        fig.suptitle(f"Capability: {_KINDS.get(cap.kind)}: NOT FORECASTABLE (o the refused fits' values, not "
                     f"forecasts; * actual)", fontsize=10)
    else:  # a flagged forecast says so on the figure too, as the loss plot does
        flagged = "" if cap.reliable else ", FLAGGED (see the checks in the report)"
        fig.suptitle(f"Capability forecast{flagged}: {_KINDS.get(cap.kind)} (o forecast, * actual)", fontsize=10,
                     color="k" if cap.reliable else "C3")
    _save(fig, path)
    plt.close(fig)


def _pct(v) -> str:
    return "–" if v is None else f"{v:+.2%}"


_KINDS = {"line": "held-out line completion, exact match",
          "span": "held-out span completion up to a word end",
          "copy": "held-out spans the prompt determines"}
_INTERVALS = {"bootstrap": "bootstrap over the rungs",
              "prediction": "regression prediction interval of one new run (seed replicates as points)",
              "random-effects": ("prediction interval of one new run with a random effect per rung (the rungs' lack "
                                 "of fit beyond their seed scatter)")}


def render_markdown(forecast: Forecast, result: Result | None, images: dict[str, str]) -> str:
    loss = forecast.loss
    t = forecast.target
    L = [f"# augury forecast report: {forecast.name}", ""]
    L += [(f"Pre-registered at {forecast.registered_at} (forecast.json sha256 `{forecast.sha256[:16]}…`), "
          f"before the target started. Target: depth {t['depth']}, {t['params_matmul']:,} matmul params, "
          f"{t['tokens']:,} tokens, {t['flops']:.3g} FLOPs; largest fitted rung = 1/"
          f"{1 / forecast.ladder[-1]['fraction']:.0f} of its compute."), ""]
    L += ["## Loss", "", "| | value |", "|---|---|",
          (f"| predicted ({loss.level:.0%} interval) | {loss.predicted:.4f} [{loss.interval[0]:.4f}, "
          f"{loss.interval[1]:.4f}] nats/token |")]
    if result is not None:
        r = result.loss
        L += [f"| actual | {r.actual:.4f} nats/token |", f"| relative error | {_pct(r.rel_error)} |",
              f"| interval covers actual | {'yes' if r.covered else 'NO'} |"]
        if r.rel_error_reason:
            L += ["", f"**No relative error:** {r.rel_error_reason}."]
    law = loss.law
    L += ["", (f"Law: {law['formula']} (`{law['law']}`), fitted on {law['n_points']} rungs, where "
               f"{forecast.compute_definition}; interval: {_INTERVALS.get(loss.interval_method)}.")]
    L += ["", f"![loss vs compute]({images['loss']})", ""]
    L += ["### Predictability checks", ""]
    if loss.flags:
        L += ["**The ladder did not behave like one law; treat the forecast as unreliable:**", ""]
        L += [f"- {f}" for f in loss.flags]
    else:
        L += [("All checks passed (fit converged, rungs on the curve, no steepening, leave-largest-out backtest "
              "within tolerance).")]
    cov = forecast.data_coverage
    if cov:
        share = cov["share"]
        L += ["", (f"Data coverage: the target trains on {share[t['name']]:.0%} of the "
                   f"{cov['train_tokens']:,}-token training split, the largest rung on "
                   f"{share[forecast.ladder[-1]['name']]:.0%}. A target that covers much more of its corpus "
                   f"than the rungs may leave their trend (docs/forecast.md).")]
    bt = loss.backtest_largest_rung
    if bt:
        L += ["", (f"Leave-largest-out backtest: {bt['held_out']} predicted {bt['predicted']:.4f}, actual "
              f"{bt['actual']:.4f} ({_pct(bt['rel_error'])}, {'covered' if bt['covered'] else 'not covered'}).")]
    if forecast.capability is not None:
        L += _capability_markdown(forecast, result, images)
    if forecast.capability_skipped:
        L += ["", "## Capability", "", f"**Skipped:** {forecast.capability_skipped}."]
    if forecast.text is not None:
        tx, checked = forecast.text, result.text if result is not None else None
        L += ["", f"## Held-out text folder `{tx.folder}`", "",
              f"Predicted {tx.predicted:.4f} [{tx.interval[0]:.4f}, {tx.interval[1]:.4f}] nats/token"
              + (f"; actual {checked.actual:.4f} ({_pct(checked.rel_error)}, "
                 f"{'covered' if checked.covered else 'not covered'})" if checked is not None else "")
              + (f"; no relative error: {checked.rel_error_reason}" if checked and checked.rel_error_reason else "")
              + ".", "", f"![text loss]({images['text']})"]
        if tx.flags:
            L += [""] + [f"- {f}" for f in tx.flags]
    L += ["", "## Runs", "", ("| run | depth | d_model | N (matmul) | tokens | D/N | FLOPs | C/C_target | val loss | "
          "bits/byte | train time |"), "|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = list(forecast.ladder)
    if result is not None:
        rows.append(result.target_run)
    for r in rows:
        L.append(f"| {r['name']} | {r['depth']} | {r['d_model']} | {r['params_matmul']:,} | {r['tokens']:,} | "
                 f"{r['tokens'] / r['params_matmul']:.2f} | {r['flops']:.3g} | {r['fraction']:.3g} | {r['loss']:.4f} | "
                 f"{r['bpb']:.4f} | {format_seconds(r['seconds']) if r.get('seconds') is not None else '–'} |")
    if result is not None and result.timings:
        L += ["", "## Timings", "", ("Ladder and target training: each run's own training time, also when an "
                                     "earlier invocation trained it; the other phases: this invocation's."), "",
              "| phase | time |", "|---|---|"]
        L += [f"| {k} | {format_seconds(v)} |" for k, v in result.timings.items()]
    L += ["", "Protocol: docs/forecast.md. Nothing from the target's run fed the fits above."]
    return "\n".join(L) + "\n"


def _capability_markdown(forecast: Forecast, result: Result | None, images: dict[str, str]) -> list[str]:
    cap = forecast.capability
    checked = result.capability if result is not None else None
    folds = capability_folds(forecast, result)
    kept = " and ".join(str(f.kept_problems) for f, _ in folds)
    L = ["", f"## Capability ({_KINDS.get(cap.kind)})", "",
         (f"{kept} problems solved at least once by every rung (of {cap.n_problems}); {cap.samples} "
          f"samples each at temperature {cap.temperature}.")]
    if len(folds) > 1:
        L += ["", ("Cross-fitted: each fold keeps the problems on one half of the rungs' seed replicas and "
                   "estimates pass rates on the other half; the forecast is the mean of the folds.")]
    refused = cap.predicted is None
    if refused:  # said before the fits' numbers, which are then no forecasts and are labelled so
        L += ["", f"**Not forecastable:** {cap.reason}. No capability forecast was registered; the fits' values "
                  f"below were refused and are shown only to diagnose the ladder."]
    value = "refused fit's −log pass rate (not a forecast)" if refused else "predicted −log pass rate"
    L += ["", f"| fold | bucket | problems | {value} | interval | actual |", "|---|---|---|---|---|---|"]
    for n, (fold, fold_checked) in enumerate(folds, 1):
        act = fold_checked.actual_buckets if fold_checked else None
        for i, b in enumerate(fold.buckets):
            L.append(f"| {n} | {b.bucket} | {b.n_problems} | {b.predicted:.3f} | "
                     f"[{b.interval[0]:.3f}, {b.interval[1]:.3f}] | " + (f"{act[i]:.3f} |" if act else "– |"))
        L.append(f"| {n} | all | {fold.kept_problems} | {fold.predicted:.3f} | | "
                 + (f"{fold_checked.actual:.3f} |" if fold_checked else "– |"))
    if refused:
        L.append("| **mean** | | | **not forecastable** | | "
                 + (f"**{checked.actual:.3f}** |" if checked is not None else "– |"))
    else:
        L.append(f"| **mean** | | | **{cap.predicted:.3f}** | | "
                 + (f"**{checked.actual:.3f}** ({_pct(checked.rel_error)}) |" if checked is not None else "– |"))
        if checked is not None and checked.rel_error_reason:
            L += ["", f"**No relative error:** {checked.rel_error_reason}."]
    if cap.flags:
        L += ["", "Capability checks flagged:", ""] + [f"- {f}" for f in cap.flags]
    return L + ["", f"![capability]({images['capability']})"]


def _md_to_html(md: str, images: dict[str, bytes]) -> str:
    """A small Markdown subset (headings, tables, lists, images, bold, code) to self-contained HTML."""
    import re

    out, table = [], []

    def inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", s)

    def flush():
        if table:
            rows = [r for r in table if not set(r.replace("|", "").strip()) <= {"-"}]
            cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
            out.append("<table>" + "".join(
                "<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{inline(c)}</{'th' if i == 0 else 'td'}>" for c in row)
                + "</tr>" for i, row in enumerate(cells)) + "</table>")
            table.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        m = re.match(r"!\[(.*)\]\((.+)\)", line)
        if m:
            data = base64.b64encode(images[m.group(2)]).decode()
            out.append(f'<p><img alt="{html.escape(m.group(1))}" src="data:image/png;base64,{data}"></p>')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{inline(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("- "):
            out.append(f"<li>{inline(line[2:])}</li>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    flush()
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}img{max-width:100%}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>augury forecast report</title>" \
           f"<style>{style}</style></head><body>{''.join(out)}</body></html>\n"


def write_report(out_dir: str | Path, forecast: Forecast, result: Result | None) -> tuple[Path, Path]:
    out = Path(out_dir)
    images = {"loss": "loss_vs_compute.png"}
    plot_loss(forecast, result, out / images["loss"])
    if forecast.capability is not None:
        images["capability"] = "capability.png"
        plot_capability(forecast, result, out / images["capability"])
    if forecast.text is not None:
        images["text"] = "text_loss_vs_compute.png"
        plot_loss(forecast, result, out / images["text"], key="text", title="Held-out text folder loss forecast")
    md = render_markdown(forecast, result, images)
    atomic_write_text(out / "report.md", md)
    blobs = {name: (out / name).read_bytes() for name in images.values()}
    atomic_write_text(out / "report.html", _md_to_html(md, blobs))
    return out / "report.md", out / "report.html"
