"""The forecast's report: loss-vs-compute plot (GPT-4 report Fig. 1), capability plot (Fig. 2), rung table and
timings, as `report.md` (images beside it) and a self-contained `report.html` (images embedded as base64).

    write_report(out_dir, forecast, result)      # forecast.json's and result.json's content
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from augury.forecast.ladder import format_seconds
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


def _compute_label(forecast: dict) -> str:
    if forecast.get("compute") == "non-embedding":
        return "non-embedding compute 6·N·D (fraction of the target's)"
    return "training compute (fraction of the target's)"


def plot_loss(forecast: dict, result: dict | None, path: Path, key: str = "loss", title: str | None = None) -> None:
    """Rung losses, the fitted L(C) = a·C^b (+ c), the pre-registered point with its interval, the actual target."""
    plt = _plt()
    sec = forecast[key]
    p = {k: v["value"] for k, v in sec["law"]["parameters"].items()}
    ct = forecast["target"].get("compute", forecast["target"]["flops"])
    rungs = forecast.get(f"{key}_ladder") or forecast["ladder"]
    x = np.array([r.get("compute", r["flops"]) for r in rungs]) / ct
    y = np.array([r[sec.get("y", "loss")] for r in rungs])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = np.geomspace(x.min() / 1.5, 2.0, 200)
    c = p.get("c", 0.0)  # power-loss has no irreducible term
    ax.plot(xs, p["a"] * (xs * ct) ** p["b"] + c, "--", color="C0", lw=1.2,
            label=f"fit: L = {p['a']:.3g}·C^{p['b']:.3f}" + (f" + {c:.3g}" if "c" in p else ""))
    ax.scatter(x, y, color="0.35", zorder=3, label="ladder rungs (fitted)")
    lo, hi = sec["interval"]
    ax.errorbar([1.0], [sec["predicted"]], yerr=[[sec["predicted"] - lo], [hi - sec["predicted"]]], fmt="o",
                color="C2", capsize=4, zorder=4, label=f"pre-registered forecast ({sec['level']:.0%} interval)")
    actual = (result or {}).get(key, {}).get("actual")
    if actual is not None:
        ax.scatter([1.0], [actual], marker="*", s=160, color="C3", zorder=5, label="target (actual)")
    ax.set_xscale("log")
    ax.set_xlabel(_compute_label(forecast))
    ax.set_ylabel(sec.get("y_label", "validation loss (nats/token)"))
    ax.set_title(title or "Loss forecast")
    if not sec.get("reliable", True):
        ax.text(0.02, 0.03, "FLAGGED: see the checks in the report", transform=ax.transAxes, color="C3",
                fontsize=9, weight="bold")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    _save(fig, path)
    plt.close(fig)


def capability_folds(forecast: dict, result: dict | None) -> list[tuple[dict, dict | None]]:
    """(forecast fold, verified fold or None) per cross-fitting fold; a forecast registered before cross-fitting
    is its own single fold."""
    cap = forecast["capability"]
    res = (result or {}).get("capability")
    folds = cap.get("folds") or [cap]
    checked = (res.get("folds") or [res]) if res else [None] * len(folds)
    return list(zip(folds, checked))


def plot_capability(forecast: dict, result: dict | None, path: Path) -> None:
    """Per fold and difficulty bucket: mean −log pass rate of the rungs vs compute, the fitted α·C^(−k), the
    forecast and the actual."""
    plt = _plt()
    cap = forecast["capability"]
    ct = forecast["target"].get("compute", forecast["target"]["flops"])
    folds = capability_folds(forecast, result)
    fig, axes = plt.subplots(1, len(folds), figsize=(6 * len(folds), 4.5), sharey=True, squeeze=False)
    for ax, (fold, checked) in zip(axes[0], folds):
        data = fold["per_run"]  # {run: {flops, compute, buckets: [value per bucket]}}
        cx = np.array([v.get("compute", v["flops"]) for v in data.values()])
        xs = np.geomspace(cx.min() / ct / 1.5, 2.0, 100)
        actual = checked.get("actual_buckets") if checked else None
        for i, b in enumerate(fold["buckets"]):
            color = f"C{i}"
            y = np.array([v["buckets"][i] for v in data.values()])
            ax.scatter(cx / ct, y, color=color, zorder=3, label=f"bucket {b['bucket']} ({b['n_problems']} problems)")
            a, k = b["params"]["alpha"], b["params"]["k"]
            ax.plot(xs, a * (xs * ct) ** (-k), "--", color=color, lw=1)
            lo, hi = b["interval"]
            ax.errorbar([1.0], [b["predicted"]], yerr=[[b["predicted"] - lo], [hi - b["predicted"]]], fmt="o",
                        color=color, capsize=4, mfc="white")
            if actual is not None:
                ax.scatter([1.0], [actual[i]], marker="*", s=140, color=color, edgecolor="k", zorder=5)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(_compute_label(forecast))
        if "fold" in fold and len(folds) > 1:
            ax.set_title(f"fold {fold['fold']}: problems kept on replicas {fold['select_replicas']}, rates from "
                         f"{fold['estimate_replicas']}", fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("mean −log pass rate")
    fig.suptitle(f"Capability forecast: {_KINDS.get(cap.get('kind', 'line'))} (o forecast, * actual)", fontsize=10)
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


def render_markdown(forecast: dict, result: dict | None, images: dict[str, str]) -> str:
    loss = forecast["loss"]
    t = forecast["target"]
    L = [f"# augury forecast report: {forecast['name']}", ""]
    L += [(f"Pre-registered at {forecast['registered_at']} (forecast.json sha256 `{forecast['sha256'][:16]}…`), "
          f"before the target started. Target: depth {t['depth']}, {t['params_matmul']:,} matmul params, "
          f"{t['tokens']:,} tokens, {t['flops']:.3g} FLOPs; largest fitted rung = 1/"
          f"{1 / forecast['ladder'][-1]['fraction']:.0f} of its compute."), ""]
    L += ["## Loss", "", "| | value |", "|---|---|",
          (f"| predicted ({loss['level']:.0%} interval) | {loss['predicted']:.4f} [{loss['interval'][0]:.4f}, "
          f"{loss['interval'][1]:.4f}] nats/token |")]
    if result and "loss" in result:
        r = result["loss"]
        L += [f"| actual | {r['actual']:.4f} nats/token |", f"| relative error | {_pct(r['rel_error'])} |",
              f"| interval covers actual | {'yes' if r['covered'] else 'NO'} |"]
    law = loss["law"]
    L += ["", (f"Law: {law['formula']} (`{law['law']}`), fitted on {law['n_points']} rungs, where "
               f"{forecast.get('compute_definition', 'C = training FLOPs')}; interval: "
               f"{_INTERVALS.get(loss.get('interval_method', 'bootstrap'))}.")]
    L += ["", f"![loss vs compute]({images['loss']})", ""]
    L += ["### Predictability checks", ""]
    if loss["flags"]:
        L += ["**The ladder did not behave like one law; treat the forecast as unreliable:**", ""]
        L += [f"- {f}" for f in loss["flags"]]
    else:
        L += [("All checks passed (fit converged, rungs on the curve, no steepening, leave-largest-out backtest "
              "within tolerance).")]
    cov = forecast.get("data_coverage")
    if cov:
        share = cov["share"]
        L += ["", (f"Data coverage: the target trains on {share[forecast['target']['name']]:.0%} of the "
                   f"{cov['train_tokens']:,}-token training split, the largest rung on "
                   f"{share[forecast['ladder'][-1]['name']]:.0%}. A target that covers much more of its corpus "
                   f"than the rungs may leave their trend (docs/forecast.md).")]
    bt = loss.get("backtest_largest_rung")
    if bt:
        L += ["", (f"Leave-largest-out backtest: {bt['held_out']} predicted {bt['predicted']:.4f}, actual "
              f"{bt['actual']:.4f} ({_pct(bt['rel_error'])}, {'covered' if bt['covered'] else 'not covered'}).")]
    if "capability" in forecast:
        cap = forecast["capability"]
        folds = capability_folds(forecast, result)
        kept = " and ".join(str(f["kept_problems"]) for f, _ in folds)
        L += ["", f"## Capability ({_KINDS.get(cap.get('kind', 'line'))})", "",
              (f"{kept} problems solved at least once by every rung (of {cap['n_problems']}); {cap['samples']} "
               f"samples each at temperature {cap['temperature']}.")]
        if len(folds) > 1:
            L += ["", ("Cross-fitted: each fold keeps the problems on one half of the rungs' seed replicas and "
                       "estimates pass rates on the other half; the forecast is the mean of the folds.")]
        L += ["", "| fold | bucket | problems | predicted −log pass rate | interval | actual |",
              "|---|---|---|---|---|---|"]
        for n, (fold, checked) in enumerate(folds, 1):
            act = checked.get("actual_buckets") if checked else None
            for i, b in enumerate(fold["buckets"]):
                L.append(f"| {n} | {b['bucket']} | {b['n_problems']} | {b['predicted']:.3f} | "
                         f"[{b['interval'][0]:.3f}, {b['interval'][1]:.3f}] | "
                         + (f"{act[i]:.3f} |" if act else "– |"))
            L.append(f"| {n} | all | {fold['kept_problems']} | {fold['predicted_mean_neg_log_pass_rate']:.3f} | | "
                     + (f"{checked['actual']:.3f} |" if checked else "– |"))
        if cap["predicted_mean_neg_log_pass_rate"] is None:
            L.append("| **mean** | | | **not forecastable** | | "
                     + (f"**{result['capability']['actual']:.3f}** |" if result and "capability" in result else "– |"))
            L += ["", f"**Not forecastable:** {cap['reason']}. No capability forecast was registered."]
        else:
            L.append(f"| **mean** | | | **{cap['predicted_mean_neg_log_pass_rate']:.3f}** | | "
                     + (f"**{result['capability']['actual']:.3f}** ({_pct(result['capability']['rel_error'])}) |"
                        if result and "capability" in result else "– |"))
        if cap["flags"]:
            L += ["", "Capability checks flagged:", ""] + [f"- {f}" for f in cap["flags"]]
        L += ["", f"![capability]({images['capability']})"]
    if "capability_skipped" in forecast:
        L += ["", "## Capability", "", f"**Skipped:** {forecast['capability_skipped']}."]
    if "text" in forecast:
        tx = forecast["text"]
        L += ["", f"## Held-out text folder `{tx['folder']}`", "",
              f"Predicted {tx['predicted']:.4f} [{tx['interval'][0]:.4f}, {tx['interval'][1]:.4f}] nats/token"
              + (f"; actual {result['text']['actual']:.4f} ({_pct(result['text']['rel_error'])}, "
                 f"{'covered' if result['text']['covered'] else 'not covered'})" if result and "text" in result else "")
              + ".", "", f"![text loss]({images['text']})"]
        if tx["flags"]:
            L += [""] + [f"- {f}" for f in tx["flags"]]
    L += ["", "## Runs", "", ("| run | depth | d_model | N (matmul) | tokens | D/N | FLOPs | C/C_target | val loss | "
          "bits/byte | train time |"), "|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = list(forecast["ladder"])
    if result and "target_run" in result:
        rows.append(result["target_run"])
    for r in rows:
        L.append(f"| {r['name']} | {r['depth']} | {r['d_model']} | {r['params_matmul']:,} | {r['tokens']:,} | "
                 f"{r['tokens'] / r['params_matmul']:.2f} | {r['flops']:.3g} | {r['fraction']:.3g} | {r['loss']:.4f} | "
                 f"{r['bpb']:.4f} | {format_seconds(r['seconds']) if r.get('seconds') is not None else '–'} |")
    if result and "timings" in result:
        L += ["", "## Timings", "", "| phase | time |", "|---|---|"]
        L += [f"| {k} | {format_seconds(v)} |" for k, v in result["timings"].items()]
    L += ["", "Protocol: docs/forecast.md. Nothing from the target's run fed the fits above."]
    return "\n".join(L) + "\n"


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


def write_report(out_dir: str | Path, forecast: dict, result: dict | None) -> tuple[Path, Path]:
    out = Path(out_dir)
    images = {"loss": "loss_vs_compute.png"}
    plot_loss(forecast, result, out / images["loss"])
    if "capability" in forecast:
        images["capability"] = "capability.png"
        plot_capability(forecast, result, out / images["capability"])
    if "text" in forecast:
        images["text"] = "text_loss_vs_compute.png"
        plot_loss(forecast, result, out / images["text"], key="text", title="Held-out text folder loss forecast")
    md = render_markdown(forecast, result, images)
    atomic_write_text(out / "report.md", md)
    blobs = {name: (out / name).read_bytes() for name in images.values()}
    atomic_write_text(out / "report.html", _md_to_html(md, blobs))
    return out / "report.md", out / "report.html"
