"""Pulumi entry point: validate this stack's config, build the stack and export its outputs."""

import pulumi

from program.config import load_settings
from program.stack import build_stack

for name, value in build_stack(load_settings()).items():
    pulumi.export(name, value)
