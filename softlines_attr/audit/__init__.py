"""The production audit (``softlines-attr audit``, the paper's Table 4; docs/SCORING.md "Audit").

* :mod:`~softlines_attr.audit.tags`: the later human tags, each row matched with the scored row it checks or
  given a reject reason (Spark column expressions).
* :mod:`~softlines_attr.audit.metrics`: per attribute and class, the accuracy of the values the index received,
  the accuracy had the abstained rows been given their best class, coverage, the confusion matrix.
* :mod:`~softlines_attr.audit.report`: ``audit.json``, ``report.md`` and ``report.html``.
* :mod:`~softlines_attr.audit.job`: the driver (a versioned output, job ``audit``).
"""
