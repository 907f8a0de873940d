"""``fleetctl``'s commands, one module each (a command group's sub-commands together); :mod:`fleetctl.cli`
wires them in, and :mod:`fleetctl.output` prints what they return."""
