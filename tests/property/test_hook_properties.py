"""Property test: whatever AWS IoT (or an attacker) sends, the hook answers well-formed and fails closed, and
no certificate is ever approved for two serials."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as label
from hypothesis import strategies as st

from fleetctl.registry_reads import devices_and_bindings
from hook import pre_provisioning
from hook.contract import Parameter, ProvisioningDenied
from hook.rules import parse_rules, validate_request
from tests.support import RULES, TABLE_NAME, FakeLambdaContext, hook_event, valid_parameters

PARAMETER_NAMES = [parameter.value for parameter in Parameter]

hostile_text = st.one_of(
    st.text(max_size=80),
    st.text(alphabet="TS-0123456789 vV.:_#/@", max_size=80),
    st.sampled_from(["temperature-sensor", "humidity-sensor", "gateway", "AcmeIoT", "1.2.0", "v9.9.9", ""]),
)
parameter_value = st.one_of(
    st.none(), st.integers(), st.booleans(), st.lists(st.text(max_size=3), max_size=2), hostile_text
)
parameters = st.one_of(
    st.builds(
        lambda base, changes: {**base, **changes},
        st.builds(valid_parameters),
        st.dictionaries(st.sampled_from(PARAMETER_NAMES), parameter_value, max_size=5),
    ),
    st.dictionaries(st.sampled_from([*PARAMETER_NAMES, "Extra"]), parameter_value, max_size=6),
    parameter_value,
)
events = st.one_of(
    st.builds(hook_event, parameters, certificate=st.sampled_from(["a", "b", "c"])),
    st.builds(
        lambda event, key: {k: v for k, v in event.items() if k != key},
        st.builds(hook_event),
        st.sampled_from(["certificateId", "templateArn", "clientId", "parameters"]),
    ),
    parameter_value,
)


RULE_SET = parse_rules(RULES)


def registry_holding(dynamodb: Any, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Make the registry table hold exactly ``items`` (a scan's); returns them."""
    present = dynamodb.scan(TableName=TABLE_NAME)["Items"]
    if present != items:
        for requests in (
            [{"DeleteRequest": {"Key": {"serialNumber": item["serialNumber"]}}} for item in present],
            [{"PutRequest": {"Item": item}} for item in items],
        ):
            if requests:
                dynamodb.batch_write_item(RequestItems={TABLE_NAME: requests})
    return items


def reaches_the_registry(event: Any) -> bool:
    """Whether the rules accept the event's parameters: only then does the hook read or write the registry."""
    try:
        validate_request(event["parameters"], RULE_SET)
    except (TypeError, KeyError, ProvisioningDenied):
        return False
    return True


@pytest.fixture
def one_device(configure_hook: Any, dynamodb: Any) -> list[dict[str, Any]]:
    """The registry's items once a device provisioned: serial TS-000123 (every well-formed event's, unless
    it changes it) with certificate ``c``."""
    answer = pre_provisioning.lambda_handler(hook_event(certificate="c"), FakeLambdaContext())
    assert answer["allowProvisioning"] is True
    items: list[dict[str, Any]] = dynamodb.scan(TableName=TABLE_NAME)["Items"]
    return items


@settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(with_a_device=st.booleans(), event=events)
def test_every_answer_is_well_formed_and_denials_write_nothing(
    configure_hook: Any, dynamodb: Any, one_device: list[dict[str, Any]], with_a_device: bool, event: Any
) -> None:
    # Each example starts from the same table, whatever the previous one left: empty, or with one device
    # when the event is one that reaches the registry.
    start = one_device if with_a_device and reaches_the_registry(event) else []
    before = registry_holding(dynamodb, start)
    answer = pre_provisioning.lambda_handler(event, FakeLambdaContext())

    assert set(answer) == {"allowProvisioning", "parameterOverrides"}
    assert isinstance(answer["allowProvisioning"], bool)
    overrides = answer["parameterOverrides"]
    assert isinstance(overrides, dict)
    assert all(isinstance(value, str) for value in overrides.values())
    assert set(overrides) <= set(PARAMETER_NAMES)
    after = dynamodb.scan(TableName=TABLE_NAME)["Items"]
    devices, bindings = devices_and_bindings(after)
    certificates = [item["certificateId"] for item in devices.values() if "certificateId" in item]
    assert len(certificates) == len(set(certificates))  # no certificate belongs to two serials
    assert bindings == {item["certificateId"]: serial for serial, item in devices.items()}
    label("approved" if answer["allowProvisioning"] else "denied")
    if answer["allowProvisioning"]:
        assert set(overrides) == set(PARAMETER_NAMES)
        serial = overrides["SerialNumber"]
        [item] = [item for item in after if item["serialNumber"]["S"] == serial]
        assert item["certificateId"]["S"] == event["certificateId"]
        assert item["deviceType"]["S"] == overrides["DeviceType"]
    else:
        assert overrides == {}
        assert after == before
