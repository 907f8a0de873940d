"""fleetctl at fleet scale: figures of its bulk commands, each printed beside its target.

Run from the repository root::

    .venv/bin/python -m bench.fleet_bench [--rows 100000] [--strict]

Everything runs locally with fake credentials; no AWS account is used, and nothing measured here says how
fast AWS is (``bench/capacity.py`` gives that from AWS's quotas).

**Pre-registration** (``bench/fleet_preregister.py``): ``fleetctl preregister --json`` of a manifest of
``--rows`` rows, run through Typer's ``CliRunner`` as an operator runs the command.

1. Rows per second, end to end (the manifest's check, its second read and the writes), against moto in
   process (``moto.mock_aws``, the registry table created as the tests create it). Informational: moto
   answers every request under the same interpreter lock as fleetctl (about 2-4 ms a ``PutItem`` on a
   shared 2-vCPU machine), so this measures moto more than fleetctl; fleetctl's 16 requests in flight are
   what gives throughput against AWS.
2. DynamoDB requests per row, in the same run: every request fleetctl's clients sent (a botocore
   ``before-send`` handler, so retries would count), divided by the rows. Target 1.0.
3. Peak memory, flatness: the ratio of the import's peak memory at ``--rows`` rows to that at a tenth of
   them; target <= 1.2 (a list of all rows would make it about 10). Each size runs in a fresh interpreter
   with ``tracemalloc`` started right before the command, so the figure is the peak of what the command
   itself allocated (clients, rows in flight, the digests that find repeated serials), not the
   interpreter's or the imports'. There DynamoDB is a stub (a ``before-send`` handler answering every
   ``PutItem`` with success) rather than moto: moto keeps the whole table in the same heap, and its growth
   with every row stored is DynamoDB's memory, not fleetctl's. The peak resident set size of each
   interpreter is printed for information (it includes ``tracemalloc``'s own bookkeeping).

**Bulk revoke** (``bench/fleet_bulk_revoke.py``): ``fleetctl revoke --type`` of ``--devices`` devices (1,000),
each ``ACTIVE`` with a thing, a certificate attached to it and the type's policy attached to the
certificate, all in moto; run through the module function behind the command
(:class:`fleetctl.bulk.BulkRun`), unpaced, so that the figures are fleetctl's and moto's, not the pacing's.

1. Devices per second, end to end (the type index read, every device revoked). Informational: moto-bound.
2. AWS IoT requests per device; target 6, the documented steps (ListThingPrincipals, DescribeCertificate,
   UpdateCertificate, ListAttachedPolicies, DetachPolicy, DetachThingPrincipal). DynamoDB requests per
   device; target 2 (the ``REVOKED`` write and the ``certificatesRevokedAt`` record written last) plus the
   selection's 16 shard queries spread over the devices.
3. Peak memory (``tracemalloc`` from just before the run: clients, pages, devices in flight, and moto's
   own per-request allocations) at a quarter of the devices and at all of them; target: ratio <= 1.5 (the
   selection is streamed: a list of every device would make it about 4).
4. Pacing: the same revoke of 50 devices with the real pacer (:func:`fleetctl.pacing.aws_iot_pacer`),
   measured against what AWS's rates allow (:func:`fleetctl.pacing.paced_seconds`); target 0.95-1.2 (never
   faster than the rates, little slower). Then the time the rates alone set for 1,000 and 1,000,000
   devices: AWS's default quotas, not a measurement (info).

The script is informational and exits 0; with ``--strict`` it exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from bench.fake_aws import FAKE_CREDENTIALS
from bench.figures import Figure, print_figures
from bench.fleet_bulk_revoke import bulk_revoke_section
from bench.fleet_preregister import preregister_section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--rows", type=int, default=100_000, help="manifest rows pre-registered (default 100,000)"
    )
    parser.add_argument(
        "--devices", type=int, default=1_000, help="devices revoked by the bulk revoke (default 1,000)"
    )
    args = parser.parse_args(argv)
    if args.rows < 10:
        parser.error("--rows must be at least 10")
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(FAKE_CREDENTIALS)

    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as work:
        figures += preregister_section(args.rows, Path(work))
        figures += bulk_revoke_section(args.devices, Path(work))

    return print_figures(figures, strict=args.strict)


if __name__ == "__main__":
    sys.exit(main())
