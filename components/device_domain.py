"""DeviceDomain: one hostname for a global fleet's devices, answered by the nearest region.

In each region: an AWS IoT domain configuration for the custom domain with that region's ACM server
certificate (AWS IoT developer guide, "Creating and configuring customer managed domains": register the
server certificate in ACM, create the domain configuration, then a DNS record pointing the domain at the
account's ``iot:Data-ATS`` endpoint), and a Route 53 latency record (``set_identifier`` = the region) for the
domain in the fleet's hosted zone, so DNS answers each device with the region of lowest latency (Route 53
developer guide, "Latency-based routing"). Devices must send SNI with the domain: AWS IoT picks the domain
configuration by it (the same guide, and "Transport security in AWS IoT Core").

OCSP stapling (``serverCertificateConfig``) is not an input of the pinned pulumi-aws ``DomainConfiguration``
and stays AWS IoT's default (off).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

DNS_TTL_SECONDS = 60
"""How long resolvers keep a region's answer: a region taken out of DNS stops being answered within it."""


@dataclass(frozen=True)
class DeviceDomainArgs:
    """Arguments of :class:`DeviceDomain`."""

    name_prefix: str
    domain_name: str
    hosted_zone_id: str
    certificate_arn: str
    """This region's ACM certificate for ``domain_name``."""
    region: str
    iot_endpoint: pulumi.Input[str]
    """The account's ``iot:Data-ATS`` endpoint address in this region: what the record points at."""
    tags: dict[str, str] = field(default_factory=dict)


class DeviceDomain(pulumi.ComponentResource):
    """This region's domain configuration and latency record for the fleet's device hostname."""

    domain_configuration_name: pulumi.Output[str]

    def __init__(self, name: str, args: DeviceDomainArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("iot-fleet-provisioning:index:DeviceDomain", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        configuration = aws.iot.DomainConfiguration(
            f"{name}-configuration",
            name=f"{args.name_prefix}-devices",
            domain_name=args.domain_name,
            server_certificate_arns=[args.certificate_arn],
            service_type="DATA",
            tags=args.tags,
            opts=child,
        )
        aws.route53.Record(
            f"{name}-latency-record",
            zone_id=args.hosted_zone_id,
            name=args.domain_name,
            type="CNAME",
            ttl=DNS_TTL_SECONDS,
            records=[args.iot_endpoint],
            set_identifier=args.region,
            latency_routing_policies=[aws.route53.RecordLatencyRoutingPolicyArgs(region=args.region)],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[configuration]),
        )
        self.domain_configuration_name = configuration.name
        self.register_outputs({"domain_configuration_name": self.domain_configuration_name})
