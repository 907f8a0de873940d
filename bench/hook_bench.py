"""Performance figures of the pre-provisioning hook, each printed with its target and PASS/FAIL, for a stack
without key binding ("plain"), for a device type that binds keys ("binding") and for a zero-touch device type
("zero-touch").

Run from the repository root::

    .venv/bin/python -m bench.hook_bench [--strict] [--rounds 5] [--cold-runs 3] [--decisions 400]

Figure 1 is ``bench/hook_cold_start.py``'s, figures 2 and 3 ``bench/hook_overhead.py``'s, figure 4 this
script's; the three cases are ``bench/hook_cases.py``'s. Everything runs locally with fake credentials; no AWS
account is used. The cold-start figure needs moto's server (``pip install flask flask-cors``, or
``moto[server]``).

Key binding (issue 12) parses the certificate being registered with ``cryptography``, imported only on that
path; the targets hold for stacks without binding, and the binding figures are printed beside them. Its
events carry a real certificate (an EC P-256 key, as a secure element makes one) of the key the serial was
pre-registered with. Zero-touch (issue 23) also verifies the device's vendor chain (device certificate and
signer, base64 DER, to a pinned root) in ``hook/vendor_chain.py``, imported only for zero-touch types; its
devices are new elements of a vendor made by the bench, and need no pre-registration.

Noise: each figure is measured in ``--rounds`` rounds, the measured side and its baseline interleaved within
each round; a round gives one ratio, and the figure is the median of the rounds' ratios, printed with their
spread (lowest-highest) and every round's value. Nothing is dropped.

1. Cold start ratio: ``import hook.pre_provisioning`` plus its first invocation (one real approval written
   to a moto server on 127.0.0.1), divided by ``import boto3`` plus creating one DynamoDB client. Each runs
   in a fresh interpreter started in the unpacked function package, with the same environment and preamble,
   timed inside the interpreter with ``time.perf_counter()``. A round runs ``--cold-runs`` interpreters of
   each side (plain, binding, zero-touch, baseline), rotating which goes first; its ratio is the medians'
   ratio. Target <= 1.2 for plain; binding and zero-touch for information, with what each path adds in
   milliseconds. Each plain
   interpreter reports whether ``cryptography`` (or ``hook.public_keys``) was imported: it must not be.
2. Overhead per decision: the real handler, in process, approving new serials with a stubbed DynamoDB
   client, against the same stubbed request sent alone on the same client; a round's ratio is the p50 of
   its ``--decisions`` hook decisions over the p50 of as many lone requests, and the cases take turns
   round by round. Target <= 1.5 for plain; binding and zero-touch for information. p99 and the difference in
   microseconds are pooled over the rounds, for information. The stub is a ``before-send`` handler on the
   hook's own client that answers every request with DynamoDB's success (HTTP 200, ``{}``) instead of
   sending it, so both sides go through all of botocore but the socket: parameter validation and
   serialisation, endpoint resolution, SigV4 signing, response parsing and the retry handler. (botocore's
   ``Stubber`` answers earlier, at ``before-call``, skipping signing and parsing, and checks each
   request against an expected one, a cost of its own; moto, which the previous figure used, charges for
   its own bookkeeping: its ``UpdateItem`` cost grows with the number of clauses and its transactions
   deep-copy the table, so a ratio against moto measured moto.) The baseline is what the hook's client
   sent for one approval (one ``TransactWriteItems`` of the serial's item, the certificate's binding and
   the claim breaker's check, with the key's condition for binding), captured and replayed with the same
   parameters. The two are
   measured in turn, hook then alone, then alone then hook, and so on, after an untimed warm-up of both:
   the machine's noise falls on both.
3. DynamoDB requests per approval (botocore ``before-send`` events on the hook's client, against
   in-process moto: a retry needs the registry's real conditions), and per retried approval (same
   serial, same certificate; informational), and per denial while the claim certificate's breaker is open
   (``ClaimSuspended``: the same one request, cancelled by its check).
4. Size of the zipped function code: the archive the program declares (``hook/**/*.py``, ``rules.json``,
   ``activation.json``), deflated as the local deployer uploads it, for a stack of default settings and for
   the same stack with a device type that binds keys, or a zero-touch type (whose pinned root rides in
   ``rules.json``). The binding path ships nothing more in it:
   ``cryptography`` comes with the Powertools layer (``components/powertools.py``); the figure checks that
   the package holds no ``cryptography``. The cold starts run in these very packages.

The script is informational and exits 0; with ``--strict`` it exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Final

from bench.fake_aws import REGION
from bench.figures import Figure, print_figures
from bench.hook_cases import BINDING, BINDING_TYPE, PLAIN, VENDOR, ZERO_TOUCH, zero_touch_type_config
from bench.hook_cold_start import measure_cold_start
from bench.hook_overhead import hook_on_moto, measure_overhead, measure_requests
from components.function_archives import PRE_PROVISIONING, package_bytes
from program.device_types import DEFAULT_DEVICE_TYPES
from tests.pulumi_mocks import deploy

ZIP_SIZE_LIMIT: Final = 50 * 1024


def stacks(root_file: Path) -> dict[str, dict[str, Any]]:
    """Stack config of each case: default settings, and the same with a device type that binds keys, or
    with a zero-touch type pinning the bench vendor's root (written to ``root_file``)."""
    root_file.write_text(VENDOR.root.certificate_pem(), encoding="utf-8")
    return {
        PLAIN.name: {"aws:region": REGION},
        BINDING.name: {
            "aws:region": REGION,
            "deviceTypes": [*DEFAULT_DEVICE_TYPES, {"name": BINDING_TYPE, "keyBinding": True}],
        },
        ZERO_TOUCH.name: {
            "aws:region": REGION,
            "deviceTypes": [*DEFAULT_DEVICE_TYPES, zero_touch_type_config(str(root_file))],
        },
    }


def function_package(config: dict[str, Any]) -> bytes:
    """The hook's code exactly as the program declares it for a stack of ``config`` (``hook/**/*.py`` with
    the stack's ``rules.json`` and ``activation.json``, under Pulumi's mock engine), zipped as the local
    deployer uploads it."""
    functions = deploy(config).mocks.of_type("aws:lambda/function:Function")
    [hook] = [function for function in functions if function.inputs["handler"] == PRE_PROVISIONING.handler]
    return package_bytes(hook.inputs["code"])


def measure_zip_size(packages: dict[str, bytes]) -> list[Figure]:
    """Bytes of each case's zipped function code; neither may carry ``cryptography``."""
    figures = []
    for case, package in packages.items():
        with zipfile.ZipFile(io.BytesIO(package)) as archive:
            paths = [PurePosixPath(name) for name in archive.namelist()]
        configs = sorted(path.name for path in paths if path.suffix != ".py")
        bundled = [path for path in paths if "cryptography" in path.parts]
        figures.append(
            Figure(
                f"zipped function code, {case}",
                f"{len(package):,}",
                f"(bytes, {len(paths) - len(configs)} .py files + {', '.join(configs)}; "
                f"{len(bundled)} files of cryptography)",
                f"< {ZIP_SIZE_LIMIT:,}",
                len(package) < ZIP_SIZE_LIMIT and not bundled,
            )
        )
    return figures


# --- main ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds of each comparison, figures their median (default 5)",
    )
    parser.add_argument(
        "--cold-runs", type=int, default=3, help="interpreters per side and round (default 3)"
    )
    parser.add_argument(
        "--decisions", type=int, default=400, help="timed decisions per case and round (default 400)"
    )
    parser.add_argument("--counted-approvals", type=int, default=50, help="approvals counted (default 50)")
    args = parser.parse_args(argv)

    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="hook-bench-") as work:
        work_dir = Path(work)
        configs = stacks(work_dir / "vendor-root.pem")
        packages = {case: function_package(config) for case, config in configs.items()}
        figures += measure_cold_start(args.rounds, args.cold_runs, work_dir, packages)
        figures += measure_overhead(work_dir, args.rounds, args.decisions)
        with hook_on_moto(work_dir) as client:
            figures += measure_requests(client, args.counted_approvals)
    figures += measure_zip_size(packages)

    return print_figures(figures, strict=args.strict)


if __name__ == "__main__":
    sys.exit(main())
