"""The scenario the e2e suite checks on the emulator and ``local/acceptance/aws_runner.py`` checks on AWS,
each a :class:`~local.scenario.deployment.Deployment`; with what runs it locally: the sandbox (the emulator
with the local stack deployed in it), ``make demo``, and the readers of what a stack did (the hook's logs,
fleetctl's output).

The sample fleet provisions as its entries expect: approved devices are ``ACTIVE`` with their thing,
certificate and shadow; rejected devices, a clone among them, leave nothing behind; a revoked device
cannot open a new connection. Checks raise :class:`~local.scenario.expectations.ScenarioFailure` (an
``AssertionError``) saying what was found and what was expected.
"""
