"""Local end to end: the stack deployed into the ministack AWS emulator, provisioned by simulated devices.

Nothing here talks to AWS: the emulator listens on 127.0.0.1 only, and the same device code can target
real AWS by giving it the stack's ``iotEndpoint``, port 8883 and the Amazon Root CA.
"""
