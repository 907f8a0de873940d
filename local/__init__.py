"""Local end to end: the stack deployed into the ministack AWS emulator, provisioned by simulated devices.

One sub-package per job: ``emulator`` (start and stop ministack), ``deploy`` (the local stack deployed into
it), ``devices`` (simulated devices), ``scenario`` (the shared scenario, the sandbox and ``make demo``) and
``acceptance`` (the same scenario on a throwaway AWS stack, ``make aws-acceptance``).

Only ``acceptance`` talks to AWS: the emulator listens on 127.0.0.1 only, and the same device code can target
real AWS by giving it the stack's ``iotEndpoint``, port 8883 and the Amazon Root CA.
"""
