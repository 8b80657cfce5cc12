"""The report directory: ``report.json`` (every number), ``report.md``, and ``report.html``.

The HTML page is self-contained, the page a person opens first: every figure is a PNG embedded
as a ``data:`` URI, so it can be mailed or attached as one file. Figures need matplotlib (the
``synthaug[report]`` extra); without it only the JSON and Markdown are written, and a one-line
hint says how to get the page.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_write_text
from ..grid import grid_image

__all__ = ["GRID_PER_CLASS", "HTML_HINT", "QUALITY_HEAD", "REPORT_FILES", "figures", "html_page",
           "is_our_report", "json_safe", "markdown", "tables", "write_report"]

log = logging.getLogger("synthaug")

REPORT_FILES = ("report.json", "report.md", "report.html")
HTML_HINT = "report.html needs matplotlib: pip install 'synthaug[report]' (wrote report.json and report.md)"
#: Images per class in the real-vs-generated grids.
GRID_PER_CLASS = 8


def write_report(out: Path, results: dict[str, Any], images: dict[str, Any]) -> dict[str, str]:
    """Write the report files into ``out`` (created if needed); return their paths by kind.

    ``images`` holds what the figures show and the JSON does not: ``train`` (ImageData),
    ``generated`` and ``generated_labels`` (tensors), ``train_images`` (the memorisation
    reference, float tensor).
    """
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": str(atomic_write_text(out / "report.json", json.dumps(json_safe(results), indent=2) + "\n")),
             "markdown": str(atomic_write_text(out / "report.md", markdown(results)))}
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log.warning(HTML_HINT)
        (out / "report.html").unlink(missing_ok=True)  # a page from an earlier run would contradict this one
        return files
    files["html"] = str(atomic_write_text(out / "report.html", html_page(results, figures(results, images))))
    return files


#: How each report file that eval writes begins: ``--force`` overwrites a file only when it does.
_REPORT_MARKS = {"report.json": b'{\n  "synthaug_eval_format"', "report.md": b"# synthaug eval report",
                 "report.html": b'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
                                b"<title>synthaug eval report</title>"}


def is_our_report(path: Path) -> bool:
    """Whether ``path`` (one of :data:`REPORT_FILES`) is a report file that eval wrote."""
    mark = _REPORT_MARKS[path.name]
    try:
        with open(path, "rb") as fh:
            return path.is_file() and not path.is_symlink() and fh.read(len(mark)) == mark
    except OSError:
        return False


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by ``None``: JSON has neither.

    Example:
        >>> json_safe({"a": [1.0, float("nan")], "b": float("inf")})
        {'a': [1.0, None], 'b': None}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


# --------------------------------------------------------------------------- text


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


def _interval_pct(iv: dict[str, Any]) -> str:
    if iv is None or iv.get("mean") is None:
        return "–"
    return f"{iv['mean']:.1%}" + (f" ± {iv['ci95']:.1%}" if iv.get("ci95") is not None else "")


def _gain_pts(iv: dict[str, Any] | None) -> str:
    if iv is None or iv.get("mean") is None:
        return "baseline"
    return f"{iv['mean'] * 100:+.1f}" + (f" ± {iv['ci95'] * 100:.1f}" if iv.get("ci95") is not None else "") + " pts"


def _quality_row(name: str, m: dict[str, Any]) -> list[str]:
    kid = "–" if m["kid"] is None else f"{m['kid']:.4f} ± {_num(m['kid_std'], 2)}"
    return [name, str(m["n_generated"]), _num(m["fid"]), kid, _pct(m["precision"]), _pct(m["recall"]),
            _num(m["density"]), _pct(m["coverage"])]


QUALITY_HEAD = ["set", "N", "FID", "KID ± std", "precision", "recall", "density", "coverage"]


def tables(results: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """The report's tables as ``(title, header, rows)``: shared by Markdown and HTML."""
    q, cas, memo = results["quality"], results["cas"], results["memorisation"]
    out = [("Sample quality (against the real training images, in the feature space)", QUALITY_HEAD,
            [_quality_row("generated", q["generated"]), _quality_row("held-out real (reference)", q["heldout_real"])])]
    out.append(("Classification Accuracy Score", ["trained on", "test accuracy"],
                [["generated images only", _pct(cas["cas"])], ["real training images", _pct(cas["real_accuracy"])],
                 ["CAS ratio", _num(cas["ratio"])]]))
    for entry in results["gain"]["fractions"]:
        rows = [[f"{arm['dose']:g}", _interval_pct(arm["accuracy"]), _interval_pct(arm["balanced_accuracy"]),
                 _gain_pts(arm.get("gain"))] for arm in entry["arms"]]
        out.append((f"Downstream gain at {entry['fraction']:.0%} of the training data ({entry['train_size']} images, "
                    f"{len(entry['seeds'])} paired seeds)", ["dose", "accuracy", "balanced accuracy", "gain"], rows))
    out += _methods_tables(results.get("methods") or {})
    out.append(("Memorisation (pixel space)", ["measure", "value"], [
        ["near-copies among generated samples", _pct(memo["near_copy_share"])],
        ["near-copies among held-out real images (base rate)", _pct(memo["heldout_near_copy_share"])],
        ["median distance to the nearest training image, relative to held-out real",
         _num(memo["median_relative_distance"])],
        ["near-copy threshold (relative distance)", _num(memo["threshold"])]]))
    headline = max(results["gain"]["fractions"], key=lambda e: e["fraction"])
    doses = [arm for arm in headline["arms"] if arm["dose"] > 0]
    rows = []
    for name, per in q["per_class"].items():
        g = per["generated"]
        rows.append([name, _pct(g["precision"]), _pct(g["recall"]), _pct(g["coverage"]),
                     "–" if g["kid"] is None else f"{g['kid']:.4f}", _pct(memo["per_class_near_copy_share"][name])]
                    + [_gain_pts(arm["per_class_change"][name]) for arm in doses])
    out.append((f"Per class (gain columns at {headline['fraction']:.0%} of the data)",
                ["class", "precision", "recall", "coverage", "KID", "near-copies"]
                + [f"change at dose {arm['dose']:g}" for arm in doses], rows))
    return out


def _methods_tables(methods: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """Every arm of the baselines comparison side by side, and what was skipped and why."""
    out = []
    if methods.get("arms"):
        rare = bool(methods["rare_classes"])
        head = ["arm", "accuracy", "balanced accuracy"] + (["rare classes"] if rare else []) + [
            f"gain in {methods['metric'].replace('_', ' ')} over real", "synthetic on top of the baseline"]
        rows = []
        for arm in methods["arms"]:
            metric = methods["metric"]
            over = arm.get("over_baseline", {}).get(metric)
            rows.append([arm["label"], _interval_pct(arm["accuracy"]), _interval_pct(arm["balanced_accuracy"])]
                        + ([_interval_pct(arm["rare_accuracy"])] if rare else [])
                        + [_gain_pts(arm["gain"][metric]) if arm["name"] != "real" else "baseline",
                           _gain_pts(over) if over else ""])
        title = (f"The practitioner's baselines, alone and with synthetic samples ({len(methods['seeds'])} paired "
                 f"seeds, all the training data; largest class / smallest {methods['imbalance']:.3g}"
                 + (f"; rare classes: {', '.join(methods['rare_classes'])}" if rare else "") + ")")
        out.append((title, head, rows))
    if methods.get("skipped"):
        out.append(("Baselines not run", ["baseline", "why"], [[k, v] for k, v in methods["skipped"].items()]))
    return out


def _settings_lines(results: dict[str, Any]) -> list[str]:
    s, d, f = results["settings"], results["data"], results["feature_space"]
    lines = [f"generator: {results['generator']['source']} ({results['generator']['family']})",
             f"training data: {d['train']['name']} ({d['train']['size']} images, {d['train']['fingerprint']})",
             f"test data: {d['test']['name']} ({d['test']['size']} images, {d['test']['fingerprint']})"]
    if d["split"]:
        lines.append(f"test split: {d['split']['test_fraction']:.0%} of each class of {d['split']['source']}, "
                     f"seed {d['split']['seed']}")
    lines += [f"feature space: {f['description']} ({f['dim']} dimensions)",
              f"classifier: {s['classifier']}, {s['steps']} steps per arm (batch {s['batch_size']}), classical "
              f"augmentation {'on' if s['classical_augment'] else 'off'}, seeds {s['seeds']}",
              f"time: {results['seconds']:.0f} s; synthaug {results['versions']['synthaug']}, "
              f"torch {results['versions']['torch']}"]
    return lines


def markdown(results: dict[str, Any]) -> str:
    rec = results["recommendation"]
    lines = ["# synthaug eval report", "", f"**{rec['text']}**", ""]
    lines += [f"- warning: {w}" for w in rec["warnings"]] + ([""] if rec["warnings"] else [])
    for title, head, rows in tables(results):
        lines += [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in rows] + [""]
    if results["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in results["notes"]] + [""]
    lines += ["## Settings", ""] + [f"- {line}" for line in _settings_lines(results)] + [""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- figures


def _png_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _per_class_grid(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> np.ndarray:
    rows = []
    for c in range(num_classes):
        picked = images[labels == c][:GRID_PER_CLASS]
        pad = torch.zeros((GRID_PER_CLASS - len(picked), *images.shape[1:]))
        rows.append(torch.cat([picked, pad]))
    return np.asarray(grid_image(torch.cat(rows), GRID_PER_CLASS))


def figures(results: dict[str, Any], images: dict[str, Any]) -> list[tuple[str, str]]:
    """``(caption, data URI)`` for each figure."""
    # Figure objects, not pyplot: no global state, no backend switch in the user's session.
    from matplotlib.figure import Figure

    def subplots(*grid, **kw):
        fig = Figure(figsize=kw.pop("figsize"))
        return fig, fig.subplots(*grid, **kw)

    train = images["train"]
    names = list(train.class_names)
    out = []

    fig, axes = subplots(1, 2, figsize=(8, 0.45 * len(names) + 1))
    for ax, title, grid in ((axes[0], "real (training)", _per_class_grid(train.as_float(), train.labels, len(names))),
                            (axes[1], "generated", _per_class_grid(images["generated"], images["generated_labels"],
                                                                   len(names)))):
        ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, interpolation="nearest")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks((np.arange(len(names)) + 0.5) * grid.shape[0] / len(names), names)
    out.append(("Real and generated images, one row per class", _png_uri(fig)))

    fractions = results["gain"]["fractions"]
    by_fraction = [(f"{entry['fraction']:.0%} of data", [arm["dose"] for arm in entry["arms"]], entry["arms"])
                   for entry in fractions]
    out.append(("Test accuracy against the synthetic dose, mean and 95% interval over seeds",
                _accuracy_plot(subplots, by_fraction, "dose (share of each batch synthetic)", "Accuracy vs dose")))
    if len(fractions) > 1:
        by_dose = [(f"dose {arm['dose']:g}", [entry["fraction"] * 100 for entry in fractions],
                    [entry["arms"][i] for entry in fractions]) for i, arm in enumerate(fractions[0]["arms"])]
        out.append(("Test accuracy against the share of real training data, per dose",
                    _accuracy_plot(subplots, by_dose, "share of the training data (%)", "Accuracy vs data fraction")))

    headline = max(fractions, key=lambda e: e["fraction"])
    treated = [arm for arm in headline["arms"] if arm["dose"] > 0]
    fig, ax = subplots(figsize=(max(5, 0.5 * len(names) * len(treated) / 2), 3.2))
    width = 0.8 / max(1, len(treated))
    x = np.arange(len(names))
    for i, arm in enumerate(treated):
        change = [arm["per_class_change"][n] for n in names]
        ax.bar(x + i * width, [(c["mean"] or 0) * 100 for c in change], width,
               yerr=[(c["ci95"] or 0) * 100 for c in change], capsize=2, label=f"dose {arm['dose']:g}")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x + width * (len(treated) - 1) / 2, names)
    ax.set_ylabel("accuracy change (points)")
    ax.set_title(f"Per-class change at {headline['fraction']:.0%} of the data")
    ax.legend()
    out.append(("Per-class change in test accuracy against the baseline, 95% intervals over paired seeds",
                _png_uri(fig)))

    per_class = results["quality"]["per_class"]
    fig, ax = subplots(figsize=(max(5, 0.6 * len(names)), 3.2))
    for i, key in enumerate(("precision", "recall", "coverage")):
        ax.bar(x + i * 0.27, [(per_class[n]["generated"][key] or 0) * 100 for n in names], 0.27, label=key)
    ax.set_xticks(x + 0.27, names)
    ax.set_ylim(0, 105)
    ax.set_ylabel("%")
    ax.set_title("Precision, recall and coverage per class")
    ax.legend()
    out.append(("Precision, recall and coverage of the generated samples, per class", _png_uri(fig)))

    pairs = results["memorisation"]["closest_pairs"]
    if pairs:
        gen = images["generated"][[p["generated"] for p in pairs]]
        real = images["train_images"][[p["train"] for p in pairs]]
        fig, axes = subplots(2, len(pairs), figsize=(1.1 * len(pairs), 2.6), squeeze=False)
        for j, p in enumerate(pairs):
            for row, img in ((0, gen[j]), (1, real[j])):
                arr = img.permute(1, 2, 0).clamp(0, 1).numpy()
                axes[row, j].imshow(arr[..., 0] if arr.shape[2] == 1 else arr, cmap="gray", vmin=0, vmax=1,
                                    interpolation="nearest")
                axes[row, j].set_xticks([])
                axes[row, j].set_yticks([])
            axes[0, j].set_title(f"{p['relative_distance']:.2f}", fontsize=8)
        axes[0, 0].set_ylabel("generated")
        axes[1, 0].set_ylabel("nearest real")
        out.append(("The generated samples closest to a training image (top) and that image (bottom); "
                    "titles: distance relative to held-out real images", _png_uri(fig)))
    return out


def _accuracy_plot(subplots, series, xlabel: str, title: str) -> str:
    """One error-bar line per ``(label, xs, arms)``: each arm's mean accuracy and 95% interval."""
    fig, ax = subplots(figsize=(5, 3.2))
    for label, xs, arms in series:
        means = [arm["accuracy"]["mean"] * 100 for arm in arms]
        errs = [(arm["accuracy"]["ci95"] or 0) * 100 for arm in arms]
        ax.errorbar(xs, means, yerr=errs, marker="o", capsize=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{title} (95% intervals)")
    ax.legend()
    return _png_uri(fig)


# --------------------------------------------------------------------------- HTML


def html_page(results: dict[str, Any], figs: list[tuple[str, str]]) -> str:
    esc = html.escape
    rec = results["recommendation"]
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', "<title>synthaug eval report</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:0.25em 0.6em;"
             "text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}"
             ".rec{font-size:1.3em;padding:0.6em;background:#eef5ff;border-left:4px solid #36c}"
             ".warn{color:#a00}figure{margin:1em 0}figcaption{font-size:0.9em;color:#444}</style>",
             "</head><body>", "<h1>synthaug eval report</h1>", f'<p class="rec">{esc(rec["text"])}</p>']
    parts += [f'<p class="warn">warning: {esc(w)}</p>' for w in rec["warnings"]]
    for caption, uri in figs:
        parts.append(f'<figure><img src="{uri}" alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption></figure>')
    for title, head, rows in tables(results):
        parts.append(f"<h2>{esc(title)}</h2><table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows]
        parts.append("</table>")
    if results["notes"]:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in results["notes"]) + "</ul>")
    parts.append("<h2>Settings</h2><ul>" + "".join(f"<li>{esc(line)}</li>" for line in _settings_lines(results))
                 + "</ul>")
    parts.append("<p>Every number is in report.json beside this page.</p></body></html>")
    return "\n".join(parts) + "\n"
