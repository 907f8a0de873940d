"""AWS Lambda code of the fleet provisioning system: only what is deployed.

Self-contained: it imports nothing from the rest of the project. Each function is deployed with its own
package, the modules its handler imports (``components/function_archives.py``); the Pulumi program imports
:mod:`hook.contract` so that the template, the table and the functions agree.
"""
