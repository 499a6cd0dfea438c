"""``jaxal report``: one HTML page (plus PNG, markdown and CSV) comparing runs.

Reads finished or running workdirs (``config.json``, ``results.csv``,
``labeled_indices.npz``, ``DONE``) and writes to ``REPORT_DIR``:

    index.html               self-contained (figures as base64 PNG, inline CSS)
    report.md                every table, and the figures as links
    learning_curves.png      mean ± std test accuracy over seeds vs labels
    time_split.png           mean seconds per round: train / eval / score / select
    class_distribution.png   classes of the acquired labels (bundled / npz datasets)
    overlap.png              mean Jaccard of the final labeled sets between strategies
    <table>.md, <table>.csv  status, summary, time_split, class_distribution,
                             overlap, config_diff

The metrics are those of :mod:`jaxal.metrics`, computed per seed and then
summarised as mean ± std over seeds. In the CSV files accuracies are fractions
(as in ``results.csv``); the page and the markdown show percentages.

Also ``python -m jaxal.report_html ...`` and ``python -m jaxal.report ...``.
Exit status 2, with one line, for unusable input (a folder that is not a
workdir, runs on different datasets, bad ``--targets``).
"""

from jaxal.reporting.page import build_report, main
from jaxal.reporting.runs import ReportError, load_run

__all__ = ["ReportError", "build_report", "load_run", "main"]
