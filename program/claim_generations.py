"""Generations of the claim certificate in stack config: a name, or ``{name, csr, active}``."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from program.constraints import expected, name_part


class ClaimGenerationSettings(BaseModel):
    """One generation of the claim certificate; a bare name is an active one with an AWS-made key."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: Annotated[str, name_part(16), expected("generation {value}: expected 1-16 characters of a-z 0-9 -")]
    """Names the generation's resources and alarm."""
    csr: Annotated[
        # Found anywhere in the text (pydantic searches for the pattern), or the empty string.
        str,
        StringConstraints(pattern=r"^$|-----BEGIN CERTIFICATE REQUEST-----"),
        expected("expected a PEM certificate signing request, or empty for an AWS-made key"),
    ] = ""
    """PEM CSR of this generation, so its private key never enters Pulumi state; empty to let AWS generate
    the key pair (the private key of the current generation is then a secret stack output)."""
    active: bool = True
    """False deactivates the certificate. Nothing in the program ever re-activates one."""
    certificate_pem: Annotated[
        str,
        StringConstraints(pattern=r"^$|-----BEGIN CERTIFICATE-----"),
        expected("expected the PEM certificate the registry region's stack made for this generation"),
    ] = Field(default="", alias="certificatePem")
    """In a global fleet's other regions: the generation's certificate, made by the registry region's stack
    (its ``claimCertificatePems`` output), registered here as it is (``RegisterCertificateWithoutCA``), so
    that one factory image provisions in every region."""

    @model_validator(mode="before")
    @classmethod
    def _name_alone(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value
