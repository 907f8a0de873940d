"""Pulumi components, one per subsystem. They receive typed arguments and never read stack config."""
