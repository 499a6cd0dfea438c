"""The report's tables, written as markdown, CSV and HTML."""

from __future__ import annotations

import csv
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jaxal.reporting.analysis import (
    _tkey,
)

# --- tables -----------------------------------------------------------------------


@dataclass
class Table:
    """A table three ways: formatted cells (markdown, HTML) and raw rows (CSV)."""

    name: str
    title: str
    columns: list[str]
    cells: list[list[str]]
    raw: list[dict]
    note: str = ""

    def markdown(self) -> str:
        esc = lambda t: str(t).replace("|", "\\|")
        lines = [f"## {self.title}", ""]
        if self.note:
            lines += [self.note, ""]
        lines.append("| " + " | ".join(esc(c) for c in self.columns) + " |")
        lines.append("|" + "|".join(" --- " for _ in self.columns) + "|")
        lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in self.cells]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
            for row in self.cells
        )
        note = f'<p class="note">{html.escape(self.note)}</p>' if self.note else ""
        return f'{note}<table id="table-{self.name}"><tr>{head}</tr>{body}</table>'

    def write(self, out_dir: str) -> None:
        with open(os.path.join(out_dir, f"{self.name}.md"), "w") as f:
            f.write(self.markdown())
        fields = list(dict.fromkeys(k for r in self.raw for k in r))
        with open(os.path.join(out_dir, f"{self.name}.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            for r in self.raw:
                w.writerow({k: _csv_value(k, v) for k, v in r.items()})


def _csv_value(key: str, v):
    if isinstance(v, float | np.floating):
        if not np.isfinite(v):
            if key.startswith("labels_to_") and not key.endswith(("_mean", "_std")):
                return "not reached"
            return ""
        return repr(float(v))
    return v


def _pct(m: float, sd: float | None = None) -> str:
    if not np.isfinite(m):
        return "—"
    return f"{100 * m:.2f}" + (f" ± {100 * sd:.2f}" if sd is not None else "")


def _num(m: float, sd: float | None = None, fmt: str = ".1f") -> str:
    if not np.isfinite(m):
        return "—"
    return f"{m:{fmt}}" + (f" ± {sd:{fmt}}" if sd is not None else "")


def summary_table(rows: Sequence[dict], targets: Sequence[float]) -> Table:
    has_ref = any("labeling_efficiency_mean" in r for r in rows)
    cols = ["strategy", "seeds", "labels", "final accuracy %", "AULC %"]
    cols += [f"labels to {100 * t:g}%" for t in targets]
    if has_ref:
        cols += ["labeling efficiency ×", "gain over random (points)"]
    cells = []
    for r in rows:
        c = [r["label"], str(r["seeds"]), _num(float(r["final_labels"]), fmt=".0f")]
        c.append(
            f"{_pct(r['final_accuracy_mean'], r['final_accuracy_std'])} #{r['final_accuracy_rank']}"
        )
        c.append(f"{_pct(r['aulc_mean'], r['aulc_std'])} #{r['aulc_rank']}")
        for t in targets:
            k = _tkey(t)
            if np.isfinite(r[k]):
                spread = _num(r[f"{k}_seed_mean"], r[f"{k}_seed_std"])
                n = r[f"{k}_seeds_reached"]
                c.append(f"{r[k]:.1f} #{r[f'{k}_rank']} (seeds: {spread}, {n}/{r['seeds']})")
            else:
                c.append("not reached")
        if has_ref:
            if not r["random_reference"]:
                c += ["no random run", "no random run"]
            else:
                n = r["labeling_efficiency_seeds"]
                eff = _num(r["labeling_efficiency_mean"], r["labeling_efficiency_std"], ".2f")
                tail = "" if n == r["seeds"] else f" ({n}/{r['seeds']} seeds)"
                c.append(f"{eff} #{r['labeling_efficiency_rank']}{tail}")
                g = r["gain_over_random_mean"], r["gain_over_random_std"]
                c.append(f"{_pct(*g)} #{r['gain_over_random_rank']}")
        cells.append(c)
    note = (
        "Mean ± std over seeds of per-seed values; #k = rank (1 = best). Final accuracy: each "
        "seed's last round. AULC: trapezoid area under accuracy vs labels ÷ label range. "
        "Labels to a target: linear interpolation on the mean curve (seeds: the same per "
        "seed, over the seeds that reach it)."
    )
    if has_ref:
        note += (
            " Labeling efficiency: labels random needs to reach the strategy's final "
            "accuracy (interpolated on random's curve, same seed) ÷ labels the strategy used; "
            "seeds where random never reaches it are left out. Gain over random: final "
            "accuracy − random's accuracy at the same labels (same seed), in points."
        )
    return Table("summary", "Summary", cols, cells, list(rows), note)
