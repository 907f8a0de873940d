"""AWS Lambda code of the fleet provisioning system.

Self-contained: it imports nothing from ``components/``. The Pulumi program packages this folder as the
function's code and imports :mod:`hook.contract` so that the template, the table and the hook agree.
"""
