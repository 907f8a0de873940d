"""A certificate's expiry as AWS IoT reports it: what the activation and rotation functions record as the
registry's ``certificateNotAfter`` when a certificate becomes a serial's current one.

``DescribeCertificate`` returns ``certificateDescription.validity.notAfter`` (AWS IoT API Reference,
DescribeCertificate and CertificateValidity), so the functions need no X.509 parser in their package. The
API model marks ``validity`` and ``notAfter`` optional (the local emulator leaves them out): then nothing is
recorded, and ``fleetctl certs expiring`` counts the device among those without a recorded expiry.
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
