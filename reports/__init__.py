"""Reports: pure functions over a run's per-request table, then figures, then documents.

``schema`` is the table's contract and ``load`` reads a run directory; the ``metrics``
package holds all metric and verdict logic, and ``analysis.analyse`` applies it to one run.
``plots`` draws figures and ``figures`` picks, captions and labels them; ``labels`` and
``tables`` are the text both documents share; ``html_report`` and ``markdown_summary``
render them and ``build`` writes them (``gvf report``). Nothing here imports ``loadtests``.
"""
