"""A global fleet in stack config: the regions whose stacks form one fleet, and which of them holds the
registry (``docs/global-fleet.md``).

``iot-fleet-provisioning:fleet`` is ``{name, regions, registryRegion}``; every region's stack carries the
same one. Absent, the stack is a fleet of its own region alone, whose registry is in that region.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from program.constraints import expected, name_part

Region = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$"),
    expected("expected an AWS region such as us-east-1"),
]


class FleetSettings(BaseModel):
    """The fleet a stack belongs to: its name, its regions, and the region of its one registry table."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, alias_generator=to_camel)

    name: Annotated[str, name_part(32), expected("expected 1-32 characters of a-z 0-9 -, e.g. acme-global")]
    """Names the fleet in outputs and in ``fleetctl``."""
    regions: Annotated[
        tuple[Region, ...],
        Field(min_length=1),
        expected('expected a non-empty list of AWS regions, e.g. ["eu-west-1", "us-east-1"]'),
    ]
    """Every region with a stack of the fleet."""
    registry_region: Region
    """The region whose stack declares the registry table every region's functions use."""

    @model_validator(mode="after")
    def _registry_among_regions(self) -> FleetSettings:
        listed_twice = sorted({region for region in self.regions if self.regions.count(region) > 1})
        if listed_twice:
            raise ValueError(f"regions: {', '.join(listed_twice)} listed twice; expected each region once")
        if self.registry_region not in self.regions:
            raise ValueError(
                f"registryRegion {self.registry_region} is not one of regions ({', '.join(self.regions)}); "
                "expected one of them"
            )
        return self


class DeviceDomainSettings(BaseModel):
    """A custom domain devices of every region connect to: this region's AWS IoT domain configuration and
    its latency record in the fleet's hosted zone (``docs/global-fleet.md``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, alias_generator=to_camel)

    name: Annotated[
        str,
        StringConstraints(pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", max_length=253),
        expected("expected a lowercase fully qualified domain name such as devices.example.com"),
    ]
    """The one hostname factories burn; the same in every region."""
    hosted_zone_id: Annotated[
        str, StringConstraints(pattern=r"^Z[A-Z0-9]{1,31}$"), expected("expected a Route 53 hosted zone id")
    ]
    """The public hosted zone holding ``name``; the same in every region."""
    certificate_arn: Annotated[
        str,
        StringConstraints(pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+$"),
        expected("expected the ARN of an ACM certificate for name, in this stack's region"),
    ]
    """This region's ACM certificate for ``name``: AWS IoT takes a server certificate of its own region."""

    @property
    def certificate_region(self) -> str:
        """The region of :attr:`certificate_arn`."""
        return self.certificate_arn.split(":")[3]
