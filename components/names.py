"""Names of the stack's account-wide resources: its IAM roles and its CloudWatch dashboard.

IAM names are account-wide, and so are CloudWatch dashboards (CloudFormation's AWS::CloudWatch::Dashboard:
"All dashboards in your account are global, not region-specific"; ``PutDashboard`` overwrites a dashboard
of the same name). AWS IoT, Lambda, DynamoDB, SQS, SNS, KMS alias, EventBridge and CloudWatch Logs and alarm
names are regional. Each account-wide name carries the region, so the same stack config in two regions of
one account declares disjoint names. The roles the program leaves to Pulumi's auto-naming (the rules' log
roles) get a random suffix and need no region.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

IAM_ROLE_NAME_MAX_LENGTH: Final = 64
"""IAM's limit on a role name (botocore ``iam`` ``CreateRole`` ``RoleName``: max 64)."""


class Role(StrEnum):
    """The stack's named IAM roles; the value ends the role's name."""

    PROVISIONING = "provisioning"
    """The provisioning template's role."""
    IOT_LOGGING = "iot-logging"
    """The role AWS IoT logging writes with (the account-settings owner's)."""
    DEFENDER_AUDIT = "defender-audit"
    """The role Device Defender audits with (the account-settings owner's, with ``defenderAudit``)."""
    DEFENDER_ALERTS = "defender-alerts"
    """The role Device Defender publishes audit findings to the alert topic with (the owner's)."""
    HOOK = "hook"
    ACTIVATION = "activation"
    STALE_APPROVALS = "stale-approvals"
    ROTATION = "rotation"
    RETIREMENT = "retirement"
    CLAIM_BREAKER = "claim-breaker"
    """The execution roles of the functions; shorter than the functions' names, so that the longest base
    name and region fit IAM's 64 characters."""


def account_wide_name(base_name: str, region: str, purpose: str) -> str:
    """``<base>-<region>-<purpose>``: the name of one of the stack's account-wide resources."""
    return f"{base_name}-{region}-{purpose}"


@dataclass(frozen=True)
class AccountWideNames:
    """The account-wide names of one stack in one region."""

    base_name: str
    """``<resourcePrefix>-<environment>``."""
    region: str

    def role(self, role: Role) -> str:
        """The name of one of the stack's IAM roles."""
        return account_wide_name(self.base_name, self.region, role.value)

    @property
    def dashboard(self) -> str:
        """The name of the provisioning dashboard."""
        return account_wide_name(self.base_name, self.region, "provisioning")

    def oversized_roles(self) -> list[str]:
        """Role names longer than IAM allows."""
        names = [self.role(role) for role in Role]
        return [name for name in names if len(name) > IAM_ROLE_NAME_MAX_LENGTH]
