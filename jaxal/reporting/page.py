"""The report itself: ``build_report`` and the ``jaxal report`` command line."""

from __future__ import annotations

import argparse
import base64
import html
import os
import sys
from collections.abc import Sequence

import numpy as np

from jaxal.reporting.analysis import (
    class_rows,
    make_series,
    overlap_matrix,
    status_rows,
    summarize,
    time_rows,
)
from jaxal.reporting.figures import (
    _heatmap,
    plot_learning_curves,
    plot_time_split,
)
from jaxal.reporting.runs import (
    _OUTPUTS,
    PHASES,
    USAGE_EXIT,
    ReportError,
    _run_names,
    differing_keys,
    flatten,
    load_run,
)
from jaxal.reporting.tables import (
    Table,
    _num,
    summary_table,
)

# --- the report -------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f0f0f0} td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee} .note{color:#555;font-size:13px}
h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
"""


def build_report(run_dirs: Sequence[str], out_dir: str, targets=(0.8, 0.9), title=None) -> dict:
    """Reads the runs and writes the report into ``out_dir``.

    Returns:
      ``{"html": path, "figures": [png paths], "tables": [names], "notes": [...]}``.

    Raises:
      ReportError: a folder that is not a workdir, or runs on different datasets.
    """
    names = _run_names(run_dirs)
    runs = [load_run(p, n) for p, n in zip(run_dirs, names, strict=True)]
    datasets = {r.dataset_name for r in runs}
    if len(datasets) > 1:
        which = ", ".join(f"{r.name}: {r.dataset_name}" for r in runs)
        raise ReportError(
            f"the runs use different datasets ({which}); a report compares runs on one dataset"
        )
    os.makedirs(out_dir, exist_ok=True)
    for stale in _OUTPUTS:  # an earlier report's files that this one may not write
        if os.path.exists(os.path.join(out_dir, stale)):
            os.remove(os.path.join(out_dir, stale))
    notes: list[str] = []
    series = make_series(runs)
    sections: list[tuple[str, str, str]] = []  # (id, title, html)
    tables: list[Table] = []
    figures: list[str] = []

    def figure(name: str, png: bytes, alt: str) -> str:
        figures.append(os.path.join(out_dir, f"{name}.png"))
        b64 = base64.b64encode(png).decode("ascii")
        return f'<img id="fig-{name}" alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'

    # status
    st = status_rows(runs)
    st_cols = ["run", "strategy", "status", "seeds", "rounds", "labels", "diverged", "detail"]
    st_cells = [
        [
            r["run"],
            r["strategy"],
            r["status"],
            f"{r['seeds_found']}/{r['seeds_expected']}",
            f"{r['rounds_found']}/{r['rounds_expected'] or '?'}",
            f"{r['labels_found']}/{r['labels_expected'] or '?'}",
            str(r["diverged_rows"]),
            r["detail"],
        ]
        for r in st
    ]
    unfinished = [r for r in st if r["status"] != "complete"]
    st_note = (
        "Every run and strategy; rounds = fewest rounds any seed has. Unfinished ones are "
        "reported on the rounds they have."
        if unfinished
        else "Every run is complete."
    )
    tables.append(Table("status", "Status", st_cols, st_cells, st, st_note))
    sections.append(("status", "Status", tables[-1].html()))

    if series:
        png, keys = plot_learning_curves(os.path.join(out_dir, "learning_curves.png"), series)
        cap = (
            f"Faceted by {', '.join(keys)} (the settings in which the runs differ)."
            if keys
            else "All strategies on one axis."
        )
        body = f'<p class="note">{html.escape(cap)} Shaded: ± std over seeds.</p>'
        sections.append(
            ("learning-curves", "Learning curves", body + figure("learning_curves", png, cap))
        )

        summ = summarize(series, targets)
        tables.append(summary_table(summ, targets))
        sections.append(("summary", "Summary", tables[-1].html()))

        tr = time_rows(series)
        png = plot_time_split(os.path.join(out_dir, "time_split.png"), tr)
        t_cols = [
            "strategy",
            "rounds",
            "train s",
            "eval s",
            "score s",
            "select s",
            "per round s",
            "round 0 s",
            "total s",
        ]
        t_cells = [
            [r["label"], str(r["rounds_averaged"])]
            + [f"{r[p]:.3f}" for p in (*PHASES, "round_seconds")]
            + [
                f"{r['round0_seconds']:.2f}" if r["round0_seconds"] != "" else "—",
                f"{r['wall_seconds']:.2f}",
            ]
            for r in tr
        ]
        t_note = (
            "Mean wall seconds per round over rounds ≥ 1 (round 0 includes compilation and is "
            "shown apart); total = every round of the strategy."
        )
        tables.append(Table("time_split", "Time per round", t_cols, t_cells, tr, t_note))
        sections.append(
            (
                "time",
                "Time per round",
                tables[-1].html() + figure("time_split", png, "time split per round"),
            )
        )

        cnotes: list[str] = []
        crows, c = class_rows(series, cnotes)
        if any(r["label"] != "pool" and not r["label"].startswith("pool (") for r in crows):
            mat = np.stack([r["fractions"] for r in crows])
            png = _heatmap(
                os.path.join(out_dir, "class_distribution.png"),
                mat,
                [r["label"] for r in crows],
                [str(i) for i in range(c)],
                "class",
                "%",
            )
            c_cols = ["strategy", "acquired / seed"] + [f"class {i} %" for i in range(c)]
            c_cells = [
                [r["label"], f"{r['acquired_per_seed']:g}"]
                + [f"{100 * v:.1f}" for v in r["fractions"]]
                for r in crows
            ]
            c_raw = [
                {"label": r["label"], "acquired_per_seed": r["acquired_per_seed"]}
                | {f"class_{i}": float(v) for i, v in enumerate(r["fractions"])}
                for r in crows
            ]
            c_note = (
                "Class fractions of the labels each strategy acquired (rounds ≥ 1, the shared "
                "initial pool left out), mean over seeds; pool = the whole unlabeled pool."
            )
            if cnotes:
                c_note += " Skipped: " + "; ".join(cnotes) + "."
            tables.append(
                Table(
                    "class_distribution",
                    "Class distribution of acquired labels",
                    c_cols,
                    c_cells,
                    c_raw,
                    c_note,
                )
            )
            sections.append(
                (
                    "classes",
                    "Class distribution of acquired labels",
                    tables[-1].html() + figure("class_distribution", png, "class distribution"),
                )
            )
        else:
            why = "; ".join(cnotes) or "no labels were acquired"
            notes.append(f"class distribution skipped: {why}")
            sections.append(
                (
                    "classes",
                    "Class distribution of acquired labels",
                    f'<p class="note">Skipped: {html.escape(why)}.</p>',
                )
            )

        labels, mat = overlap_matrix(series)
        if labels:
            png = _heatmap(
                os.path.join(out_dir, "overlap.png"), mat, labels, labels, "strategy", "jaccard"
            )
            o_cells = [[a] + [_num(v, fmt=".3f") for v in mat[i]] for i, a in enumerate(labels)]
            o_raw = [
                {"label": a} | {b: float(mat[i, j]) for j, b in enumerate(labels)}
                for i, a in enumerate(labels)
            ]
            o_note = (
                "Mean over seeds of the Jaccard index |A ∩ B| / |A ∪ B| of the final labeled "
                "sets (initial pool included)."
            )
            missing = [s.label for s in series if s.label not in labels]
            if missing:
                o_note += f" Without labeled_indices.npz (unfinished): {', '.join(missing)}."
            tables.append(
                Table(
                    "overlap",
                    "Overlap of labeled pools",
                    ["strategy", *labels],
                    o_cells,
                    o_raw,
                    o_note,
                )
            )
            sections.append(
                (
                    "overlap",
                    "Overlap of labeled pools",
                    tables[-1].html() + figure("overlap", png, "labeled pool overlap"),
                )
            )
        else:
            notes.append("overlap skipped: no run has labeled_indices.npz (none finished)")
            sections.append(
                (
                    "overlap",
                    "Overlap of labeled pools",
                    '<p class="note">Skipped: no run has labeled_indices.npz.</p>',
                )
            )
    else:
        notes.append("no results.csv rows yet: only the status table is reported")

    if len(runs) > 1:
        diff = differing_keys([r.config for r in runs])
        flat = [flatten(r.config) for r in runs]
        d_cells = [[k] + [f.get(k, "—") for f in flat] for k in diff]
        d_raw = [
            {"key": k} | {r.name: f.get(k, "") for r, f in zip(runs, flat, strict=True)}
            for k in diff
        ]
        tables.append(
            Table(
                "config_diff",
                "Config differences",
                ["key", *[r.name for r in runs]],
                d_cells,
                d_raw,
                "" if diff else "The configs are identical.",
            )
        )
        body = tables[-1].html()
    else:
        body = '<p class="note">One run: nothing to compare.</p>'
    sections.append(("config", "Config differences", body))

    for t in tables:
        t.write(out_dir)
    heading = title or f"jaxal report: {', '.join(r.name for r in runs)}"
    runs_html = "".join(
        f"<li>{html.escape(r.name)}: {html.escape(os.path.abspath(r.path))} "
        f"(dataset {html.escape(r.dataset_name)}, {'finished' if r.done else 'not finished'})</li>"
        for r in runs
    )
    nav = " · ".join(f'<a href="#{i}">{html.escape(t)}</a>' for i, t, _ in sections)
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(heading)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(heading)}</h1><ul>{runs_html}</ul><p>{nav}</p>"
        + (f'<ul class="note">{notes_html}</ul>' if notes else "")
        + "".join(
            f'<section id="{i}"><h2>{html.escape(t)}</h2>{b}</section>' for i, t, b in sections
        )
        + "</body></html>\n"
    )
    html_path = os.path.join(out_dir, "index.html")
    with open(html_path, "w", encoding="utf-8") as f:
        f.write(page)
    md = [f"# {heading}", ""] + [f"- {n}" for n in notes] + [""]
    md += [f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in figures] + [""]
    md += [t.markdown() for t in tables]
    with open(os.path.join(out_dir, "report.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(md))
    return {
        "html": html_path,
        "figures": figures,
        "tables": [t.name for t in tables],
        "notes": notes,
    }


def _targets(text: str) -> list[float]:
    try:
        vals = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected comma-separated accuracies in (0, 1], e.g. 0.8,0.9"
        ) from None
    if not vals or any(not 0 < v <= 1 for v in vals):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected comma-separated accuracies in (0, 1], e.g. 0.8,0.9"
        )
    return vals


def main(argv: Sequence[str] | None = None) -> int:
    """``jaxal report RUN_DIR [RUN_DIR ...] --out REPORT_DIR [--targets 0.8,0.9]``."""
    parser = argparse.ArgumentParser(
        prog="jaxal report",
        description="Compare jaxal runs: one self-contained HTML page, PNG figures, "
        "markdown and CSV tables.",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="jaxal workdirs")
    parser.add_argument("--out", required=True, metavar="REPORT_DIR", help="output folder")
    parser.add_argument(
        "--targets",
        type=_targets,
        default=[0.8, 0.9],
        help="target accuracies for 'labels to target', comma-separated (default 0.8,0.9)",
    )
    parser.add_argument("--title", default=None, help="page title")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        got = build_report(args.run_dirs, args.out, targets=args.targets, title=args.title)
    except ReportError as e:
        print(f"jaxal report: error: {e}", file=sys.stderr)
        return USAGE_EXIT
    for n in got["notes"]:
        print(f"jaxal report: note: {n}")
    print(
        f"jaxal report: wrote {got['html']} ({len(got['figures'])} figures, "
        f"tables {', '.join(got['tables'])} as .md and .csv)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
