"""AWS IoT reads ``fleetctl`` needs: paged, with a missing resource as ``None``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

from cryptography import x509

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient

ACTIVE: Final = "ACTIVE"
"""The status of a certificate in use (AWS IoT API Reference, CertificateDescription: status)."""
_CERTIFICATE_ARN_MARKER: Final = ":cert/"
_JOB_EXECUTIONS_PAGE_SIZE: Final = 250
"""The most ListJobExecutionsForJob returns at once (its maxResults)."""
_JOBS_PAGE_SIZE: Final = 250
"""The most ListJobs returns at once (its maxResults)."""
_T = TypeVar("_T")


def describe_thing(iot: IoTClient, name: str) -> Mapping[str, Any] | None:
    """The thing called ``name``, or ``None``."""
    return _unless_missing(iot, lambda: iot.describe_thing(thingName=name))


def describe_certificate(iot: IoTClient, certificate_id: str) -> Mapping[str, Any] | None:
    """The certificate's description (status, ARN, PEM, dates), or ``None``."""
    response = _unless_missing(iot, lambda: iot.describe_certificate(certificateId=certificate_id))
    return None if response is None else response["certificateDescription"]


def thing_certificate_arns(iot: IoTClient, thing_name: str) -> list[str]:
    """The certificates attached to a thing (other principal kinds are left out)."""
    principals = (
        iot.get_paginator("list_thing_principals").paginate(thingName=thing_name).search("principals[]")
    )
    return [principal for principal in principals if _CERTIFICATE_ARN_MARKER in principal]


def attached_policies(iot: IoTClient, target_arn: str) -> list[str]:
    """Names of the policies attached to a certificate."""
    pages = iot.get_paginator("list_attached_policies").paginate(target=target_arn)
    return list(pages.search("policies[].policyName"))


def thing_groups(iot: IoTClient, thing_name: str) -> list[str]:
    """Names of the groups a thing belongs to."""
    pages = iot.get_paginator("list_thing_groups_for_thing").paginate(thingName=thing_name)
    return list(pages.search("thingGroups[].groupName"))


def principal_things(iot: IoTClient, certificate_arn: str) -> list[str]:
    """Names of the things a certificate is attached to."""
    return list(
        iot.get_paginator("list_principal_things").paginate(principal=certificate_arn).search("things[]")
    )


def policy_certificate_ids(iot: IoTClient, policy_name: str) -> list[str]:
    """Ids of the certificates a policy is attached to."""
    targets = (
        iot.get_paginator("list_targets_for_policy").paginate(policyName=policy_name).search("targets[]")
    )
    return [certificate_id(target) for target in targets if _CERTIFICATE_ARN_MARKER in target]


def describe_job(iot: IoTClient, job_id: str) -> Mapping[str, Any] | None:
    """The job (status, targets, creation date...), or ``None``."""
    response = _unless_missing(iot, lambda: iot.describe_job(jobId=job_id))
    return None if response is None else response["job"]


def job_executions(iot: IoTClient, job_id: str) -> Iterator[tuple[str, str]]:
    """``(thing name, execution status)`` of each of the job's executions, page by page."""
    pages = iot.get_paginator("list_job_executions_for_job").paginate(
        jobId=job_id, PaginationConfig={"PageSize": _JOB_EXECUTIONS_PAGE_SIZE}
    )
    for summary in pages.search("executionSummaries[]"):
        yield thing_name_of(summary["thingArn"]), summary["jobExecutionSummary"]["status"]


def jobs_in_progress(iot: IoTClient, id_prefix: str) -> Iterator[str]:
    """The ids starting ``id_prefix`` of the account's jobs that are ``IN_PROGRESS``, page by page: a
    snapshot job is so until each of its executions has ended ("Job states and execution states",
    https://docs.aws.amazon.com/iot/latest/developerguide/iot-jobs-lifecycle.html)."""
    pages = iot.get_paginator("list_jobs").paginate(
        status="IN_PROGRESS", PaginationConfig={"PageSize": _JOBS_PAGE_SIZE}
    )
    for summary in pages.search("jobs[]"):
        if summary["jobId"].startswith(id_prefix):
            yield summary["jobId"]


def job_execution_details(iot: IoTClient, job_id: str, thing_name: str) -> Mapping[str, str]:
    """The ``statusDetails`` a device reported with its job execution (empty when none, or gone)."""
    response = _unless_missing(iot, lambda: iot.describe_job_execution(jobId=job_id, thingName=thing_name))
    if response is None:
        return {}
    return response["execution"].get("statusDetails", {}).get("detailsMap", {})


def thing_name_of(arn: str) -> str:
    """The thing name at the end of a thing ARN (``...:thing/<name>``)."""
    return arn.rsplit("/", 1)[-1]


def certificate_id(arn: str) -> str:
    """The id at the end of a certificate ARN."""
    return arn.rsplit("/", 1)[-1]


def certificate_expiry(description: Mapping[str, Any]) -> datetime:
    """When a described certificate expires, read from its PEM (``notAfter``, UTC)."""
    pem: str = description["certificatePem"]
    return x509.load_pem_x509_certificate(pem.encode("ascii")).not_valid_after_utc


def certificate_summary(description: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Id, status, creation and expiry (from the PEM) of a described certificate, with age and days left."""
    created: datetime = description["creationDate"]
    expires = certificate_expiry(description)
    return {
        "certificateId": description["certificateId"],
        "status": description["status"],
        "createdAt": created.isoformat(),
        "ageDays": (now - created).days,
        "notAfter": expires.isoformat(),
        "daysLeft": (expires - now).days,
    }


def _unless_missing(iot: IoTClient, call: Callable[[], _T]) -> _T | None:
    try:
        return call()
    except iot.exceptions.ResourceNotFoundException:
        return None
