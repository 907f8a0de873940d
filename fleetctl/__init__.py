"""``fleetctl``: the operator CLI for device and certificate lifecycle of a fleet-provisioning stack."""
