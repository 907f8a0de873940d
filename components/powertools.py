"""The functions' runtime and the AWS-managed Powertools for AWS Lambda (Python) v3 layer, by partition.

Pure (no Pulumi): the settings use it to refuse a region where the layer is not published, before any
resource is declared.

The layer also brings ``cryptography``, which key binding (``hook/public_keys.py``) parses certificates
with, so the functions' package stays the ``hook/`` sources alone. AWS builds each v3 layer with every
extra (powertools-lambda-python ``layer_v3/layer/layer_stack.py``: ``include_extras=True``, which
``layer_v3/layer_constructors/helpers.py`` turns into ``aws-lambda-powertools[all]``), pip-installed in
``public.ecr.aws/lambda/python:<version>`` on the layer's own architecture (``layer_v3/docker/Dockerfile``,
which then removes only boto3, botocore and their dependencies). ``[all]`` holds the ``datamasking`` extra's
``aws-encryption-sdk``, which requires ``cryptography`` (issue #4192 and PR #4630 put it in the layer;
issue #5376: "the SDK is now part of the Lambda layer as of v3"); 3.37's ``[all]`` also lists
``cryptography`` itself. Key binding uses nothing newer than cryptography 3.1 (loading without a backend).
"""

from __future__ import annotations

from typing import Final

RUNTIME: Final = "python3.13"
ARCHITECTURE: Final = "arm64"

COMMERCIAL_LAYER_ACCOUNT: Final = "017000801446"
"""The publisher in every commercial region (Powertools docs, "Install": Lambda layer)."""
COMMERCIAL_ARM64_REGIONS: Final = frozenset(
    {
        "af-south-1",
        "ap-east-1",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-south-1",
        "ap-south-2",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-7",
        "ca-central-1",
        "eu-central-1",
        "eu-central-2",
        "eu-north-1",
        "eu-south-1",
        "eu-south-2",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "il-central-1",
        "me-central-1",
        "me-south-1",
        "mx-central-1",
        "sa-east-1",
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
    }
)
"""Commercial regions where the arm64 layer is published (Powertools docs, the arm64 layer table; not
ca-west-1, which has no arm64 layers). A region added later joins this list once the table lists it."""
OTHER_PARTITION_LAYER_ACCOUNTS: Final = {
    "cn-north-1": "498634801083",
    "us-gov-east-1": "165087284144",
    "us-gov-west-1": "165093116878",
}
"""The publishers outside the commercial partition, one per region (Powertools docs, "Install": China and
GovCloud rows). cn-northwest-1 has no layer."""


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
        if region not in COMMERCIAL_ARM64_REGIONS:
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
