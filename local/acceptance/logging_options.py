"""AWS IoT's v2 logging options (one set per account and region) as the run found them, and putting them
back after the stack is destroyed: an owning stack with ``enableAuditLogging: false`` sets logging off with
its own role (``components/account.py``), the provider's delete of ``aws.iot.LoggingOptions`` does nothing
(terraform-provider-aws ``iot/logging_options.go``), and the role goes with the stack."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

_KEPT: Final = ("roleArn", "defaultLogLevel", "disableAllLogs", "eventConfigurations")
"""What ``GetV2LoggingOptions`` answers and ``SetV2LoggingOptions`` takes back (botocore's iot model)."""


@dataclass(frozen=True)
class LoggingOptions:
    """The options ``GetV2LoggingOptions`` answered, or ``None`` when the account never set any
    (``NotConfiguredException``)."""

    found: Mapping[str, Any] | None

    @classmethod
    def read(cls, iot: Any) -> LoggingOptions:
        """The options now; raises botocore's other errors."""
        try:
            answer = iot.get_v2_logging_options()
        except iot.exceptions.NotConfiguredException:
            return cls(None)
        return cls({key: answer[key] for key in _KEPT if key in answer})

    def restore(self, iot: Any) -> str:
        """Set the options back as found (``iam:PassRole`` on their role is the caller's); says what was
        done. Options never set cannot be unset: AWS IoT has no call for it, so logging stays off."""
        if not self.found or "roleArn" not in self.found:
            return "AWS IoT logging: not configured before the run, so left off (no call unsets it)"
        iot.set_v2_logging_options(**self.found)
        level = "off" if self.found.get("disableAllLogs") else self.found.get("defaultLogLevel", "set")
        return f"AWS IoT logging: put back ({level}, role {self.found['roleArn']})"
