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
from hook.contract import Parameter
from tests.support import TABLE_NAME, FakeLambdaContext, hook_event, valid_parameters

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


@pytest.fixture
def registry_snapshot() -> dict[str, Any]:
    """The registry's items after the previous example: the table lives through all of the examples."""
    return {}


@settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=events)
def test_every_answer_is_well_formed_and_denials_write_nothing(
    configure_hook: Any, dynamodb: Any, registry_snapshot: dict[str, Any], event: Any
) -> None:
    before = (
        registry_snapshot["items"]
        if "items" in registry_snapshot
        else dynamodb.scan(TableName=TABLE_NAME)["Items"]
    )
    answer = pre_provisioning.lambda_handler(event, FakeLambdaContext())

    assert set(answer) == {"allowProvisioning", "parameterOverrides"}
    assert isinstance(answer["allowProvisioning"], bool)
    overrides = answer["parameterOverrides"]
    assert isinstance(overrides, dict)
    assert all(isinstance(value, str) for value in overrides.values())
    assert set(overrides) <= set(PARAMETER_NAMES)
    after = registry_snapshot["items"] = dynamodb.scan(TableName=TABLE_NAME)["Items"]
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
