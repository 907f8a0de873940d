"""The activation function's configuration: what the Pulumi program packages and the function reads.

Standard library only: the Pulumi program imports it, and the program's environment (``requirements.txt``)
has neither Powertools nor anything else that only the Lambda runtime provides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ActivationConfig:
    """What the activation function needs to know about the stack."""

    thing_name_prefix: str
    """Things of this stack are named ``<thing_name_prefix>_<serial>``; others are ignored."""
    initial_shadows: dict[str, dict[str, Any]]
    """The desired state each device type's shadow starts with."""

    @classmethod
    def load(cls, path: Path) -> ActivationConfig:
        """Read the configuration the Pulumi program packaged with the function."""
        document = json.loads(path.read_text(encoding="utf-8"))
        return cls(thing_name_prefix=document["thingNamePrefix"], initial_shadows=document["initialShadows"])

    def document(self) -> dict[str, Any]:
        """This configuration as the JSON document :meth:`load` reads."""
        return {"thingNamePrefix": self.thing_name_prefix, "initialShadows": self.initial_shadows}
