"""A certificate's expiry as AWS IoT reports it: what the rotation function records as the registry's
``certificateNotAfter`` when a new certificate becomes a serial's current one.

``DescribeCertificate`` returns ``certificateDescription.validity.notAfter`` (AWS IoT API Reference,
DescribeCertificate and CertificateValidity), so the function needs no X.509 parser in its package. The
API model marks ``validity`` and ``notAfter`` optional (the local emulator leaves them out): then nothing is
recorded. For a certificate AWS IoT issued, as every one of this stack is, the answer is always
2049-12-31T23:59:59Z (AWS IoT developer guide, X.509 client certificates), which is why the activation
function no longer asks (:mod:`hook.activation`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hook.registry_items import timestamp


def certificate_not_after(iot: Any, certificate_id: str) -> str | None:
    """When the certificate expires, as a registry timestamp; ``None`` when AWS IoT does not say (no such
    certificate, no validity). One ``DescribeCertificate``; any other AWS error is raised."""
    try:
        description = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
    except iot.exceptions.ResourceNotFoundException:
        return None
    not_after = description.get("validity", {}).get("notAfter")
    return timestamp(not_after.astimezone(UTC)) if isinstance(not_after, datetime) else None
