"""bench/capacity.py's arithmetic: the limiting quota, the time and the increases for known cases."""

from __future__ import annotations

import pytest

from bench.aws_quotas import (
    ATTACH_POLICY,
    CREATE_CERTIFICATE_FROM_CSR,
    CREATE_KEYS_AND_CERTIFICATE,
    DYNAMODB_NEW_TABLE_WRITES,
    DYNAMODB_PARTITION_WRITES,
    REGISTER_THING,
    UPDATE_CERTIFICATE,
)
from bench.capacity import (
    Assumptions,
    capacity,
    increases,
    main,
    preregistration_uses,
    provisioning_uses,
)


def test_provisioning_is_limited_by_register_thing_at_the_defaults() -> None:
    provision = capacity(provisioning_uses(Assumptions()))

    assert provision.limiting == REGISTER_THING
    assert provision.rate == 10
    assert provision.seconds(1_000_000) == 100_000  # 27.8 hours


def test_a_million_devices_in_a_day_needs_12_requests_a_second_of_each_10_per_second_api() -> None:
    rate = 1_000_000 / (24 * 3600)

    wanted = {
        increase.quota: increase.value for increase in increases(provisioning_uses(Assumptions()), rate)
    }

    assert wanted == {
        REGISTER_THING: 12,
        CREATE_KEYS_AND_CERTIFICATE: 12,
        UPDATE_CERTIFICATE: 12,
    }  # no DescribeCertificate: the activation function reads no certificate


def test_device_made_keys_use_create_certificate_from_csr_and_attach_policy_is_the_next_wall() -> None:
    uses = provisioning_uses(Assumptions(keys="device"))

    wanted = {increase.quota for increase in increases(uses, 20)}

    assert CREATE_CERTIFICATE_FROM_CSR in wanted
    assert CREATE_KEYS_AND_CERTIFICATE not in wanted
    assert ATTACH_POLICY in wanted  # 15 a second: the next wall once RegisterThing is raised


@pytest.mark.parametrize(
    ("shards", "limiting", "rate"),
    [(1, DYNAMODB_PARTITION_WRITES, 1_000), (4, DYNAMODB_NEW_TABLE_WRITES, 4_000)],
)
def test_preregistration_is_limited_by_the_busiest_index_key_until_it_is_sharded(
    shards: int, limiting: object, rate: float
) -> None:
    preregister = capacity(preregistration_uses(Assumptions(index_shards=shards)))

    assert preregister.limiting == limiting
    assert preregister.rate == rate


def test_the_registry_shards_lift_preregistration_to_the_new_table_rate() -> None:
    assert capacity(preregistration_uses(Assumptions())).limiting == DYNAMODB_NEW_TABLE_WRITES


def test_the_per_partition_limit_is_met_with_shards_not_an_increase() -> None:
    unsharded = Assumptions(index_shards=1)  # a registry from before the indexes were sharded
    [increase] = increases(preregistration_uses(unsharded), 2_500)

    assert increase.quota == DYNAMODB_PARTITION_WRITES
    assert increase.shards == 3


def test_rows_with_public_keys_cost_a_transaction_of_two_items_written_twice() -> None:
    keyed = capacity(preregistration_uses(Assumptions(keys="device", key_binding=True)))
    plain = capacity(preregistration_uses(Assumptions()))

    assert keyed.limiting == plain.limiting == DYNAMODB_NEW_TABLE_WRITES
    assert (plain.rate, keyed.rate) == (4_000, 1_000)  # 1 write unit a row against 2 * 1 + 2 * 1
    assert keyed.seconds(1_000_000) == 1_000  # 16.7 minutes


def test_key_binding_is_refused_with_keys_made_by_aws_iot(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--key-binding", "--keys", "aws"])

    assert "--key-binding needs --keys device" in capsys.readouterr().err


def test_key_binding_implies_keys_made_by_the_device(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--key-binding"]) == 0

    printed = capsys.readouterr().out
    assert "keys made by the device" in printed
    assert "manifest rows with public keys" in printed
    assert "Pre-registration: 1,000.0 rows/s, limited by DynamoDB new on-demand table writes" in printed
