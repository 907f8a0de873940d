"""The functions' runtime and the AWS-managed Powertools for AWS Lambda (Python) v3 layer, by partition.

Pure (no Pulumi): the settings use it to refuse a region where the layer is not published, before any
resource is declared.
"""

from __future__ import annotations

from typing import Final

RUNTIME: Final = "python3.13"
ARCHITECTURE: Final = "arm64"

COMMERCIAL_LAYER_ACCOUNT: Final = "017000801446"
"""The publisher in every commercial region (Powertools docs, "Install": Lambda layer)."""
OTHER_PARTITION_LAYER_ACCOUNTS: Final = {
    "cn-north-1": "498634801083",
    "us-gov-east-1": "165087284144",
    "us-gov-west-1": "165093116878",
}
"""The publishers outside the commercial partition, one per region (Powertools docs, "Install": China and
GovCloud rows). cn-northwest-1 has no layer."""
REGIONS_WITHOUT_ARM64_LAYER: Final = frozenset({"ca-west-1"})
"""Commercial regions where the arm64 layer is not published (Lambda has no arm64 layers there)."""


class LayerUnavailable(ValueError):
    """The Powertools layer is not published in this region for the functions' architecture."""


def partition_of(region: str) -> str:
    """The AWS partition of a region: ``aws``, ``aws-cn`` or ``aws-us-gov``."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("us-iso"):
        return "aws-iso-b" if region.startswith("us-isob") else "aws-iso"
    return "aws"


def powertools_layer_arn(region: str, version: int) -> str:
    """ARN of the Powertools v3 layer for :data:`RUNTIME` on :data:`ARCHITECTURE` in ``region``;
    raises :class:`LayerUnavailable` where AWS does not publish it."""
    partition = partition_of(region)
    if partition == "aws":
        if region in REGIONS_WITHOUT_ARM64_LAYER:
            raise LayerUnavailable(f"the Powertools layer is not published for {ARCHITECTURE} in {region}")
        account = COMMERCIAL_LAYER_ACCOUNT
    else:
        found = OTHER_PARTITION_LAYER_ACCOUNTS.get(region)
        if found is None:
            raise LayerUnavailable(f"the Powertools layer is not published in {region} ({partition})")
        account = found
    runtime = RUNTIME.replace(".", "")
    return (
        f"arn:{partition}:lambda:{region}:{account}:layer:"
        f"AWSLambdaPowertoolsPythonV3-{runtime}-{ARCHITECTURE}:{version}"
    )
