"""Simulated devices, as firmware built on the AWS IoT Device SDK v2 behaves: the MQTT session, key pairs and
secure elements, provisioning by claim, the device's side of certificate rotation by job, the factory
manifest, the sample fleet and the runner that provisions a fleet a few devices at a time.

Nothing here knows the emulator: the same devices provision against AWS IoT with the stack's
``iotEndpoint``, port 8883 and Amazon Root CA 1."""
