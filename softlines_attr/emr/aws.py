"""boto3 plumbing shared by the EMR commands: sessions, planned calls, request validation, errors.

Every request the commands send is first built as an :class:`ApiCall` (a plain dict of parameters),
validated against botocore's own service model, and then either printed (``--dry-run``) or sent.
Credentials come from boto3's standard chain only; ``profile`` names a profile of it.
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from softlines_attr.emr.errors import EmrApiError

if TYPE_CHECKING:  # pragma: no cover
    import boto3
    from botocore.exceptions import ClientError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiCall:
    """One AWS API request: the service (boto3's name), the operation (AWS's name) and its parameters.

    Attributes:
        service: boto3 service name (``emr``, ``s3``, ``scheduler``, ``stepfunctions``, ``iam``, ``sts``).
        operation: The API operation, as AWS spells it (``RunJobFlow``).
        params: The request parameters, exactly as passed to the client method.
        note: When the call is made, for plans with alternatives (``if GetSchedule found none``).
        display: Replacements for printing only (e.g. a ``Body`` shown as its size and checksum).
    """

    service: str
    operation: str
    params: dict[str, Any]
    note: str = ""
    display: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON form printed by ``--dry-run``."""
        out: dict[str, Any] = {
            "service": self.service,
            "operation": self.operation,
            "params": {**self.params, **self.display},
        }
        if self.note:
            out["when"] = self.note
        return out

    @property
    def method(self) -> str:
        """The boto3 client method name (``run_job_flow``)."""
        from botocore import xform_name

        return xform_name(self.operation)


@cache
def _service_model(service: str) -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


def validate_request(service: str, operation: str, params: Mapping[str, Any]) -> None:
    """Check ``params`` against botocore's model of ``service``/``operation`` (no network, no credentials).

    Raises:
        botocore.exceptions.ParamValidationError: listing every problem, as a real client call would.
    """
    from botocore.validate import validate_parameters

    shape = _service_model(service).operation_model(operation).input_shape
    validate_parameters(dict(params), shape)


def validate_calls(calls: Iterable[ApiCall]) -> None:
    """Validate every planned call (params only; ``display`` replacements are never sent)."""
    for call in calls:
        validate_request(call.service, call.operation, call.params)


def print_plan(calls: Iterable[ApiCall], out: Callable[[str], None] = print) -> None:
    """Print the planned requests as one JSON array (what ``--dry-run`` shows)."""
    out(json.dumps([c.to_json() for c in calls], indent=2, default=str))


def make_session(profile: str | None, region: str) -> boto3.Session:
    """A boto3 session on the standard credential chain (``profile`` picks a named profile)."""
    import boto3

    return boto3.Session(profile_name=profile or None, region_name=region)


_CLIENTS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def client_for(session: boto3.Session, service: str) -> Any:
    """One client per session and service (creating a client costs tens of milliseconds)."""
    per_session = _CLIENTS.setdefault(session, {})
    if service not in per_session:
        per_session[service] = session.client(service)
    return per_session[service]


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ``ClientError`` (``""`` for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def is_not_found(exc: BaseException) -> bool:
    """Whether a ``ClientError`` says the thing does not exist (codes vary by service)."""
    code = error_code(exc)
    status = (getattr(exc, "response", None) or {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
    return (
        code
        in {
            "404",
            "NoSuchKey",
            "NoSuchBucket",
            "NotFound",
            "NoSuchEntity",
            "ResourceNotFoundException",
            "StateMachineDoesNotExist",
        }
        or status == 404
    )


def api_error(exc: ClientError, call: ApiCall | str, doing: str) -> EmrApiError:
    """Wrap a ``ClientError`` as :class:`EmrApiError` naming the operation, the code and AWS's message."""
    operation = call.operation if isinstance(call, ApiCall) else call
    message = (getattr(exc, "response", None) or {}).get("Error", {}).get("Message", str(exc))
    return EmrApiError(f"{doing}: {operation} failed with {error_code(exc) or 'an error'}: {message}")


def send(session: boto3.Session, call: ApiCall, doing: str) -> dict[str, Any]:
    """Send one planned call; translate a ``ClientError`` into :class:`EmrApiError`.

    Args:
        session: The boto3 session.
        call: The request.
        doing: What the caller is doing, for the error message ("launching the cluster").
    """
    from botocore.exceptions import ClientError

    client = client_for(session, call.service)
    log.debug("%s %s", call.service, call.operation)
    try:
        return getattr(client, call.method)(**call.params)
    except ClientError as exc:
        raise api_error(exc, call, doing) from exc
