"""``fleetctl preregister MANIFEST``: import a factory manifest, or a chip vendor's signed manifest, as
``PREREGISTERED``."""

from __future__ import annotations

import datetime
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from fleetctl.commands.options import JsonFlag, stack_of, with_options
from fleetctl.context import AWS_CONCURRENCY, StackContext
from fleetctl.errors import ExitCode, UsageProblem
from fleetctl.manifest import HEADER, PUBLIC_KEY_COLUMN, CheckedManifest, ManifestRow, checked_manifest
from fleetctl.manifest_import import ImportResult, ImportTally
from fleetctl.manifest_import import preregister as preregister_rows
from fleetctl.output import print_import_report, print_manifest_problems
from fleetctl.progress import progress as show_progress
from fleetctl.signed_manifest import OPTIONS as SIGNED_OPTIONS
from fleetctl.signed_manifest import ManifestSigner, SignedManifest, VendorTrust, verified_manifest
from fleetctl.spill import Spill
from hook.contract import Parameter
from program.outputs import StackOutput

_SIGNED = "Signed manifests (--signer)"


@dataclass(frozen=True)
class SignedOptions:
    """The options of a signed manifest import: the signer's certificate and the requests' values."""

    signer: Path | None
    given: dict[Parameter, str | None]


def signed_options(
    *,
    signer: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="The vendor's manifest-signer certificate (PEM): MANIFEST is then a signed manifest.",
            rich_help_panel=_SIGNED,
        ),
    ] = None,
    device_type: Annotated[
        str | None, typer.Option(help="Every element's device type.", rich_help_panel=_SIGNED)
    ] = None,
    manufacturer: Annotated[
        str | None, typer.Option(help="Who makes the devices.", rich_help_panel=_SIGNED)
    ] = None,
    firmware: Annotated[
        str | None, typer.Option(help="Their factory firmware version.", rich_help_panel=_SIGNED)
    ] = None,
    location: Annotated[str | None, typer.Option(help="Where they go.", rich_help_panel=_SIGNED)] = None,
) -> SignedOptions:
    """The signed manifest options (:func:`~fleetctl.commands.options.with_options`)."""
    values = (device_type, manufacturer, firmware, location)
    return SignedOptions(signer, dict(zip(SIGNED_OPTIONS.values(), values, strict=True)))


@with_options(signed=signed_options)
def preregister(
    ctx: typer.Context,
    manifest: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help=f"CSV with the header {HEADER} (any order), and optionally {PUBLIC_KEY_COLUMN}; or, with "
            "--signer, a chip vendor's signed manifest (JSON array of JWS).",
        ),
    ],
    signed: SignedOptions,
    skip_invalid: Annotated[
        bool, typer.Option(help="Import the valid rows even when others are bad (CSV only).")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Import a factory manifest as PREREGISTERED, streaming: checked whole first (nothing is written while a
    row is bad), then written 16 rows at a time, slowing down when DynamoDB throttles, with the rate and the
    time left on stderr. Existing serials are left as they are; run it again to finish an interrupted one.

    With --signer, MANIFEST is a chip vendor's signed manifest: every entry's signature, signer and device
    certificate are verified against the roots the device type pins, and nothing is written unless every
    entry verifies."""
    stack = stack_of(ctx)
    with ExitStack() as files:
        checked: CheckedManifest | SignedManifest
        if signed.signer is None:
            with show_progress("checking the manifest", None) as advance:
                checked = files.enter_context(
                    checked_manifest(manifest, stack.rules, advance, signed_only=_signed_only(stack))
                )
        else:
            if skip_invalid:
                raise UsageProblem("--skip-invalid: a signed manifest is imported whole or not at all")
            checked = _verified(stack, manifest, signed.signer, signed.given)
        if checked.problem_count and not skip_invalid:
            print_manifest_problems(manifest, checked)
            raise typer.Exit(ExitCode.USAGE)
        tally = ImportTally(files.enter_context(Spill()))
        with show_progress("pre-registering", checked.valid_rows) as advance:

            def count(row: ManifestRow, result: ImportResult) -> None:
                tally.add(row, result)
                advance()

            preregister_rows(stack.bulk_records, checked.rows(), count, concurrency=AWS_CONCURRENCY)
        print_import_report(manifest, checked, tally, json_output)


def _verified(
    stack: StackContext, manifest: Path, signer: Path, given: dict[Parameter, str | None]
) -> SignedManifest:
    """The signed manifest verified against the device type's vendor trust (the ``vendorTrust`` output)."""
    missing = [option for option, parameter in SIGNED_OPTIONS.items() if not given[parameter]]
    if missing:
        raise UsageProblem(
            f"a signed manifest (--signer) needs {', '.join(missing)}: the entries name only the element"
        )
    parameters = {parameter: value for parameter, value in given.items() if value}
    trust = VendorTrust.of(stack.outputs, StackOutput.VENDOR_TRUST, parameters[Parameter.DEVICE_TYPE])
    now = datetime.datetime.now(datetime.UTC)
    return verified_manifest(
        manifest,
        signer=ManifestSigner.read(signer, trust, now),
        trust=trust,
        parameters=parameters,
        rules=stack.rules,
        now=now,
    )


def _signed_only(stack: StackContext) -> frozenset[str]:
    """The types whose keys come from signed manifests only: trusting a vendor (``vendorTrust``), not for
    zero-touch. Their CSV rows are refused."""
    trust = stack.outputs.get(StackOutput.VENDOR_TRUST)
    rules = stack.rules.device_types
    names = trust if isinstance(trust, dict) else {}
    return frozenset(name for name in names if name in rules and rules[name].zero_touch is None)
