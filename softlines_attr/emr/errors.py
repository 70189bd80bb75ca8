"""Named errors of the EMR launcher; each message says what was expected and what was found."""

from __future__ import annotations

from softlines_attr.errors import ConfigError, SoftlinesAttrError


class EmrError(SoftlinesAttrError):
    """Base class of the EMR launcher's errors."""


class EmrStageError(EmrError):
    """A release could not be built or uploaded (no source tree, wheel build failed, bucket missing)."""


class EmrPreflightError(EmrError):
    """A resource the request needs is missing: a role, an instance profile, a bucket, a staged release."""


class EmrApiError(EmrError):
    """An AWS API call was refused; the message names the operation, the error code and AWS's message."""


class EmrStepFailedError(EmrError):
    """A step of the pipeline failed or was cancelled; the message holds its reason and stderr tail."""


class EmrWaitTimeoutError(EmrError):
    """A step or cluster did not reach the expected state within the configured time."""


class EmrSpecError(EmrError, ConfigError):
    """A step of the spec is wrong: an unknown type, or arguments its command's own parser refuses."""
