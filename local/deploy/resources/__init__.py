"""Creating the program's resources in the emulator: one function per Pulumi resource type.

Each creator receives the resource's Pulumi name and its inputs as the aws provider sees them
(camelCase, numbers as floats) and returns the resource id and its outputs, as the provider would.
Importing this package registers every creator in :data:`CREATORS`.
"""

from local.deploy.resources import compute, data, iot_core, observability
from local.deploy.resources.creators import CREATORS, Emulated, UnsupportedResource

__all__ = ["CREATORS", "Emulated", "UnsupportedResource", "compute", "data", "iot_core", "observability"]
