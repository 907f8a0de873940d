"""The arguments and options more than one command takes, each defined once with its check, and
:func:`with_options`, which gives a command a group of them (the selectors, the run options) as one value."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from fleetctl import pacing, reprovision_grants, selection
from fleetctl.context import StackContext
from fleetctl.devices import SERIAL_NUMBER_FORM, is_serial_number
from fleetctl.pacing import Pacer
from hook.contract import DeviceStatus

_Command = Callable[..., None]


def stack_of(ctx: typer.Context) -> StackContext:
    """The stack the root options named (:func:`fleetctl.cli.stack_options`)."""
    return cast(StackContext, ctx.obj)


def pacer_of(ctx: typer.Context, rates: list[str]) -> Pacer:
    """AWS IoT's default rates, with the ``--rate`` values given to the command."""
    apis = pacing.COMMAND_APIS[_command_name(ctx)]
    return pacing.aws_iot_pacer(pacing.own_rates(rates, apis))


def serial_number(value: str) -> str:
    """A serial number as given, or a usage error saying the form expected."""
    if not is_serial_number(value):
        raise typer.BadParameter(f"{value!r} is not a serial number: expected {SERIAL_NUMBER_FORM}")
    return value


def grant_reason(value: str) -> str:
    """Why an operator grants or changes something, stored with it: not blank, and not too long."""
    reason = _non_blank(value)
    if len(reason) > reprovision_grants.REASON_MAX_LENGTH:
        raise typer.BadParameter(
            f"{len(reason)} characters; expected at most {reprovision_grants.REASON_MAX_LENGTH}"
        )
    return reason


def _optional_serial_number(value: str | None) -> str | None:
    return None if value is None else serial_number(value)


def _non_blank(value: str) -> str:
    if not value.strip():
        raise typer.BadParameter("must not be blank")
    return value.strip()


def _rates(ctx: typer.Context, values: list[str] | None) -> list[str] | None:
    try:
        pacing.own_rates(values or [], pacing.COMMAND_APIS[_command_name(ctx)])
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    return values


def _command_name(ctx: typer.Context) -> str:
    """The command as typed after the root options: ``revoke``, ``rotate start``."""
    names = []
    command: Any = ctx  # Any: Click's Context (a parent), which newer Typer versions vendor
    while command.parent is not None:
        names.append(command.info_name or "")
        command = command.parent
    return " ".join(reversed(names))


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of tables.")]
YesFlag = Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")]
SerialArgument = Annotated[str, typer.Argument(callback=serial_number, help="The device's serial number.")]
ReasonOption = Annotated[str, typer.Option(callback=_non_blank, help="Why; stored as revocationReason.")]
StatusOption = Annotated[DeviceStatus | None, typer.Option(help="Only devices in this state.")]
TypeOption = Annotated[str | None, typer.Option("--type", help="Devices of this type.")]
_SelectedSerial = Annotated[
    str | None, typer.Argument(callback=_optional_serial_number, help="One device's serial number.")
]
_ClaimGenerationOption = Annotated[
    str | None,
    typer.Option(
        metavar="NAME",
        help="Devices approved through this claim certificate generation (the outputs' claimCertificateIds).",
    ),
]
_FileOption = Annotated[
    Path | None,
    typer.Option("--file", exists=True, dir_okay=False, help="Devices listed in this file, a serial a line."),
]
_ProvisionedBeforeOption = Annotated[
    datetime | None,
    typer.Option(
        metavar="DATE",
        parser=selection.parse_moment,
        help="Devices approved before this ISO date or date and time (UTC unless it gives an offset).",
    ),
]
_DryRunFlag = Annotated[bool, typer.Option("--dry-run", help="Show what would change; change nothing.")]
_RateOption = Annotated[
    list[str] | None,
    typer.Option(
        "--rate",
        metavar="API=PER_SECOND",
        callback=_rates,
        help="Pace this AWS IoT API at your account's own quota instead of the default, e.g. "
        "--rate UpdateCertificate=20 after an increase (Service Quotas, service iotcore). Repeatable.",
    ),
]


def selectors(
    *,
    serial: _SelectedSerial = None,
    device_type: TypeOption = None,
    claim_generation: _ClaimGenerationOption = None,
    serials_file: _FileOption = None,
    provisioned_before: _ProvisionedBeforeOption = None,
) -> selection.Selectors:
    """SERIAL and the selectors, which combine: a device must match each one given
    (:mod:`fleetctl.selection`)."""
    return selection.Selectors(serial, device_type, claim_generation, serials_file, provisioned_before)


@dataclass(frozen=True)
class RunOptions:
    """How a command that changes devices runs."""

    dry_run: bool
    """Show what would change; change nothing."""
    yes: bool
    """Do not ask for confirmation."""
    rates: list[str]
    """``--rate API=PER_SECOND`` values, checked against what the command paces."""
    json_output: bool
    """Print JSON on stdout instead of tables."""


def run_options(
    *,
    dry_run: _DryRunFlag = False,
    yes: YesFlag = False,
    rates: _RateOption = None,
    json_output: JsonFlag = False,
) -> RunOptions:
    """``--dry-run``, ``--yes``, ``--rate`` and ``--json``."""
    return RunOptions(dry_run, yes, rates or [], json_output)


def with_options(**groups: Callable[..., object]) -> Callable[[_Command], _Command]:
    """Give a command groups of options defined once. A group is a function whose keyword-only parameters
    are arguments and options, annotated as a command's are (:func:`selectors`, :func:`run_options`); the
    command declares a parameter named as the group, and receives what the group returns. The command
    line shows the command's own parameters, then each group's."""

    def decorate(command: _Command) -> _Command:
        signature = inspect.signature(command, eval_str=True)
        own = [parameter for name, parameter in signature.parameters.items() if name not in groups]
        grouped = {name: inspect.signature(group, eval_str=True).parameters for name, group in groups.items()}
        parameters = [*own, *(parameter for each in grouped.values() for parameter in each.values())]

        @functools.wraps(command)
        def with_groups(**given: Any) -> None:
            for name, group in groups.items():
                given[name] = group(**{option: given.pop(option) for option in grouped[name]})
            command(**given)

        # What Typer reads to build the command line: the signature, and the annotations it resolves.
        with_groups.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        with_groups.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
        return with_groups

    return decorate
