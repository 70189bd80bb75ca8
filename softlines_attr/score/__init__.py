"""The scoring job: catalog + model bundles -> attributes, wide and errors tables (docs/SCORING.md).

Entry point: :func:`run_score_job` with a :class:`ScoreJob`. The pieces: :mod:`.inputs` (catalog
checks), :mod:`.models` (bundles as broadcast bytes, the per-process cache of bound
:class:`~softlines_attr.model.predictor.Predictor` s), :mod:`.task` (fetch, decode and forward on the executors),
:mod:`.incremental`
(carry unchanged rows over), :mod:`.schema` (the versioned table contract), :mod:`.job` (the driver).

MXNet is not imported by this package module (the task sets thread counts before it is).
"""

from softlines_attr.score.errors import ScoreAccountingError, ScoreInputError, ScoreModelError, ScoreSchemaError
from softlines_attr.score.job import ScoreJob, run_score_job
from softlines_attr.score.models import BundlePayload, read_payload, resolve_model_dirs

__all__ = [
    "BundlePayload",
    "ScoreAccountingError",
    "ScoreInputError",
    "ScoreJob",
    "ScoreModelError",
    "ScoreSchemaError",
    "read_payload",
    "resolve_model_dirs",
    "run_score_job",
]
