"""Named exceptions of the model stage (network, bundles, training)."""

from __future__ import annotations

from softlines_attr.errors import SoftlinesAttrError


class ModelError(SoftlinesAttrError):
    """A network or training request that cannot be carried out as asked (bad width, class count...)."""


class BundleError(ModelError):
    """A model bundle folder is malformed: unreadable manifest, wrong format version, params not matching the symbol."""


class BundleIntegrityError(BundleError):
    """A file of a model bundle is missing or its sha256 differs from the one in the manifest."""


class PredictorError(ModelError):
    """A batch the bound network cannot take (another image shape), or an unusable batch size."""


class TrainInputError(ModelError):
    """The shards given to training cannot be used: no manifest, no train split, inconsistent shards."""


class EvaluateInputError(ModelError):
    """A bundle and shards that cannot be evaluated together: base shards, an empty split, no head for the attribute."""


class ClassMismatchError(EvaluateInputError):
    """A bundle head's classes do not match the shards' labels (class count, or a label out of range)."""


class DistributedLaunchError(ModelError):
    """A distributed (ps-lite) training could not start or did not finish: a role failed, timed out, misconfigured."""
