"""Figures and the self-contained ``report.html`` of a run (matplotlib imported lazily)."""

from snnconv.report.html import REPORT_FILE, build_report, write_report
from snnconv.report.plots import ReportError, require_matplotlib

__all__ = ["REPORT_FILE", "ReportError", "build_report", "require_matplotlib", "write_report"]
