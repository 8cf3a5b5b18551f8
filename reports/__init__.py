"""Reports: pure functions over a run's per-request table, then figures, then documents.

``schema`` is the table's contract, ``load`` reads a run directory, ``metrics`` holds all
metric and verdict logic, ``plots`` draws figures from metrics, ``build`` writes the
HTML report and Markdown summary (``gvf report``). Nothing here imports ``loadtests``.
"""
