"""The promotion gate and the model registry (``softlines-attr promote``, docs/MODEL.md "Promote").

* :mod:`~softlines_attr.promote.gate`: the gate as data: per-attribute checks of a candidate's val metrics against
  the current model's (pure Python, no MXNet).
* :mod:`~softlines_attr.promote.registry`: the registry folder: its current bundle, a promotion's commit (one
  pointer write) and the decision files.
* :mod:`~softlines_attr.promote.job`: the driver: evaluate both models, apply the gate, commit or refuse.
"""
