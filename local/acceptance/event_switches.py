"""The account's AWS IoT registry-event switches (one set per account and region) as the run found them, and
switching back, after the stack is destroyed, those an owning stack changed: the provider's delete of
``aws.iot.EventConfigurations`` does nothing (terraform-provider-aws ``iot/event_configurations.go``:
``DeleteWithoutTimeout: schema.NoopContext``), so a THING switch the run turned on would stay on."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from components.account import EVENT_TYPES, event_configurations


@dataclass(frozen=True)
class EventSwitches:
    """Each registry event type's switch as found (``DescribeEventConfigurations``; a type it leaves out
    is off)."""

    found: Mapping[str, bool]

    @classmethod
    def read(cls, iot: Any) -> EventSwitches:
        """The switches now."""
        configurations = iot.describe_event_configurations().get("eventConfigurations", {})
        return cls({kind: bool(configurations.get(kind, {}).get("Enabled")) for kind in EVENT_TYPES})

    @property
    def enabled(self) -> frozenset[str]:
        """The types that were on."""
        return frozenset(kind for kind, on in self.found.items() if on)

    def restore(self, iot: Any, kept_on: Collection[str]) -> str:
        """Switch back each type that a stack keeping ``kept_on`` on (and the others off) changed, unless
        it is not as the stack set it (switched again since by another workload, or never set by a failed
        ``up``): that is left as it is. Says what was switched back; raises botocore's errors."""
        declared = event_configurations(frozenset(kept_on))
        changed = {kind for kind, on in declared.items() if on != self.found.get(kind, False)}
        if not changed:
            return "as found (the stack changed none)"
        now = EventSwitches.read(iot).found
        back = {
            kind: {"Enabled": self.found.get(kind, False)}
            for kind in sorted(changed)
            if now[kind] == declared[kind]
        }
        if back:
            iot.update_event_configurations(eventConfigurations=back)
        kept = sorted(changed - back.keys())
        switched = ", ".join(f"{kind} {'on' if value['Enabled'] else 'off'}" for kind, value in back.items())
        return f"switched back: {switched or 'none'}" + (
            f"; not as the stack set them, so left as they are: {', '.join(kept)}" if kept else ""
        )
