"""`hybridtrace doctor`: what works on this kernel, what was chosen, what to change."""

from hybridtrace.doctor.report import Check, Report, build_report

__all__ = ["Check", "Report", "build_report"]
