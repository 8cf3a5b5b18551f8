"""Every number a report shows, computed from the per-request rows and nothing else.

All metric logic of the project lives in this package, as pure functions over pandas
DataFrames (the table of ``reports.schema``, the raw ledger, Gradio's traces) and the run's
``PointRecord`` s; Locust's own (rounded) statistics are never used. One job per module:

- ``rules``: the validity rules and verdict constants (docs/design.md §5); no pandas, so
  the load generator's workers can import it alone;
- ``rows``: quantities per request row (latency, its decomposition, GPU overlaps,
  percentiles, the mean in flight);
- ``points``: the metrics and VALID/INVALID verdict of each trial of each load point;
- ``intervals``: 95% confidence intervals (between trials, or bootstraps within one);
- ``summaries``: each point over its trials, with intervals, and paired comparisons;
- ``sweeps``: the knee of each load sweep;
- ``profiler``: the ledger against Gradio's own profiler traces;
- ``deploy``: the "which should I deploy?" comparison and its verdict;
- ``mcp``: what an MCP tool call costs against REST on each server (the ``mcp`` scenario);
- ``footprint``: each started server's start-up time and memory, as run.json recorded them;
- ``abandon``: the abandon scenario's goodput and GPU time spent on answers nobody received;
- ``soak``: a soak's memory slope per 1,000 requests and its verdict.

This file stays free of imports: ``import reports.metrics.rules`` must not pull pandas.
"""
