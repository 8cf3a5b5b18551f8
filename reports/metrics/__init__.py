"""Every number a report shows, computed from the per-request rows and nothing else.

All metric logic of the project lives in this package, as pure functions over pandas
DataFrames (the table of ``reports.schema``) and the run's ``PointRecord`` s; Locust's own
(rounded) statistics are never used. One job per module:

- ``rules``: the validity rules and verdict constants (docs/design.md §5); no pandas, so
  the load generator's workers can import it alone;
- ``rows``: quantities per request row (latency, its decomposition, GPU overlaps,
  percentiles, Little's law);
- ``points``: the metrics and VALID/INVALID verdict of each load point;
- ``sweeps``: the knee and saturation point of each load sweep;
- ``deploy``: the "which should I deploy?" comparison and its verdict.

This file stays free of imports: ``import reports.metrics.rules`` must not pull pandas.
"""
