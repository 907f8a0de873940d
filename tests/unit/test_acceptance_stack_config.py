"""The acceptance runner's stack config against the Pulumi CLI's rules (``local/acceptance/stack_config.py``):
the type check ``pulumi up`` makes (pulumi/pulumi ``validateStackConfigValue``, ``ValidateConfigValue``),
what ``config set-all --path`` stores, and every value the runner writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.acceptance.aws_runner import config_arguments
from local.acceptance.run_plan import Plan, Refused
from local.acceptance.stack_config import (
    DeclaredType,
    Stored,
    declared_types,
    set_all_arguments,
    stored_by_path,
    type_errors,
)
from program.config import PROJECT_DIR

DECLARED = declared_types(PROJECT_DIR / "Pulumi.yaml")
STRINGS = DeclaredType("array", DeclaredType("string"))


def test_pulumi_yaml_types_are_read_with_the_project_namespace() -> None:
    assert DECLARED["iot-fleet-provisioning:accountEventTypes"] == STRINGS
    assert DECLARED["iot-fleet-provisioning:accountSettings"] == DeclaredType("boolean")
    assert "iot-fleet-provisioning:deviceTypes" not in DECLARED  # no `type`: the CLI does not check it


def test_text_for_an_array_fails_as_in_the_clis_own_test() -> None:
    # TestStackConfigErrorsWhenStackValueIsNotCorrectlyTyped
    declared = {"test:values": STRINGS}

    assert type_errors("dev", {"test:values": Stored("someValue")}, declared) == [
        "Stack 'dev' with configuration key 'values' must be of type 'array<string>'"
    ]


def test_a_json_list_written_as_text_is_refused_and_one_written_by_path_is_taken() -> None:
    key = "iot-fleet-provisioning:accountEventTypes"

    assert type_errors("acc1", {key: Stored('["THING"]')}, DECLARED) == [
        "Stack 'acc1' with configuration key 'accountEventTypes' must be of type 'array<string>'"
    ]
    stored = stored_by_path({f"{key}[0]": "JOB", f"{key}[1]": "THING"})
    assert stored == {key: Stored('["JOB","THING"]', object=True)}
    assert type_errors("acc1", stored, DECLARED) == []


@pytest.mark.parametrize(
    ("declared", "value", "accepted"),
    [
        (DeclaredType("boolean"), "true", True),
        (DeclaredType("boolean"), "yes", False),
        (DeclaredType("boolean"), False, True),
        (DeclaredType("integer"), "20", True),
        (DeclaredType("integer"), "hello", False),
        (DeclaredType("integer"), 20.0, True),
        (DeclaredType("integer"), 20.5, False),
        (DeclaredType("integer"), True, False),
        (DeclaredType("string"), "x", True),
        (DeclaredType("string"), 1, False),
        (STRINGS, ["a"], True),
        (STRINGS, ["a", 1], False),
        (DeclaredType("array"), ["a"], False),  # an array without items is never valid
    ],
)
def test_the_clis_rules_for_each_type(declared: DeclaredType, value: object, accepted: bool) -> None:
    assert declared.accepts(value) is accepted


def test_an_item_set_by_path_is_coerced_as_the_cli_does() -> None:
    stored = stored_by_path({"p:x[0]": "true", "p:x[1]": "42", "p:x[2]": "007", "p:x[3]": "text"})
    assert stored["p:x"].content() == [True, 42, "007", "text"]
    with pytest.raises(ValueError, match=r"p:y\[1\]: the list has 0 items"):
        stored_by_path({"p:y[1]": "a"})


@pytest.mark.parametrize("own_account_settings", [False, True])
def test_every_value_the_runner_writes_passes_the_type_pulumi_yaml_declares(
    own_account_settings: bool,
) -> None:
    plan = Plan("acc1", "eu-west-1", own_account_settings, account_event_types=("JOB", "THING"))

    arguments = config_arguments(plan)
    stored = stored_by_path(arguments)

    assert type_errors(plan.stack, stored, DECLARED) == []
    assert set(stored) == set(plan.config())  # every value written, none lost to a path
    checked = set(stored) & set(DECLARED)
    assert {"iot-fleet-provisioning:accountSettings", "iot-fleet-provisioning:environment"} <= checked
    if own_account_settings:
        assert stored["iot-fleet-provisioning:accountEventTypes"].content() == ["JOB", "THING"]


def test_a_value_pulumi_up_would_refuse_refuses_the_run_before_anything_is_created(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text(
        "name: iot-fleet-provisioning\nconfig:\n  logRetentionDays:\n    type: boolean\n", encoding="utf-8"
    )

    with pytest.raises(Refused, match="configuration key 'logRetentionDays' must be of type 'boolean'"):
        config_arguments(Plan("acc1", "eu-west-1", False), tmp_path)


def test_a_key_that_path_would_misread_is_refused() -> None:
    with pytest.raises(ValueError, match=r"config key p:a\.b"):
        set_all_arguments({"p:a.b": "x"}, {})
