"""``python -m jaxal.report_html RUN_DIR ... --out REPORT_DIR``: the entry point of
:mod:`jaxal.reporting` (the same as ``jaxal report``)."""

import sys

from jaxal.reporting import build_report, main
from jaxal.reporting.figures import colors
from jaxal.reporting.runs import PHASES

__all__ = ["PHASES", "build_report", "colors", "main"]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
