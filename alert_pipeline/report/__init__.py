"""The nightly report: a day's CSV rows, cutouts and quarantine → static HTML pages.

* ``night``: which days have CSVs, the rows of a day, its quarantine, the input
  fingerprint that says whether a report is up to date;
* ``thumbnails``: FITS cutouts → PNG thumbnails with an astronomer's stretch;
* ``plots``: the sky map, the extendedness histogram and the alerts per band (Agg);
* ``pages``: the HTML, paginated, relative links only;
* ``build``: one day's report from those parts.
"""

from alert_pipeline.report.build import ReportResult, build_report, days_to_report

__all__ = ["ReportResult", "build_report", "days_to_report"]
