"""Whether ministack, as released, still leaves ``CreateCertificateFromCsr`` over MQTT unanswered.

The emulator the suite runs carries ``local/emulator/ministack_csr_shim.py``, which answers it. This test starts a
second, bare emulator (no stack, ``MINISTACK_CSR_SHIM=0``) on other ports and sends a CSR: when an answer
comes, ministack does it itself and the shim can go."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local.deploy.resources import Emulated
from local.devices.key_pairs import KeyAlgorithm, new_key_and_csr
from local.devices.mqtt_session import Broker, Credentials, Session
from local.emulator.launcher import Emulator, EmulatorAddress

pytestmark = pytest.mark.e2e

ADDRESS = EmulatorAddress(gateway_port=4586, mqtt_port=8903)
CLIENT_ID = "csr-gap-probe"
CREATE = "$aws/certificates/create/json"
CREATE_FROM_CSR = "$aws/certificates/create-from-csr/json"
SILENCE_SECONDS = 2.0
"""How long to wait for an answer: the shimmed emulator answers in under 0.1 s."""


def _probe_policy(region: str, account_id: str) -> str:
    """Connect as the probe; publish, receive and subscribe on the two certificate requests' topics."""
    arn = f"arn:aws:iot:{region}:{account_id}"
    topics = [CREATE, CREATE_FROM_CSR]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{arn}:client/{CLIENT_ID}"},
                {
                    "Effect": "Allow",
                    "Action": ["iot:Publish", "iot:Receive"],
                    "Resource": [f"{arn}:topic/{topic}*" for topic in topics],
                },
                {
                    "Effect": "Allow",
                    "Action": "iot:Subscribe",
                    "Resource": [f"{arn}:topicfilter/{topic}/*" for topic in topics],
                },
            ],
        }
    )


def test_ministack_without_the_shim_still_leaves_create_certificate_from_csr_unanswered(
    tmp_path: Path,
) -> None:
    region = "us-east-1"
    with Emulator(ADDRESS, log_path=tmp_path / "ministack.log", csr_shim=False) as emulator:
        emulated = Emulated(ADDRESS.endpoint_url, region)
        iot = emulated.client("iot")
        account_id = emulated.client("sts").get_caller_identity()["Account"]
        created = iot.create_keys_and_certificate(setAsActive=True)
        iot.create_policy(policyName="csr-gap-probe", policyDocument=_probe_policy(region, account_id))
        iot.attach_policy(policyName="csr-gap-probe", target=created["certificateArn"])
        broker = Broker(ADDRESS.mqtt_host, ADDRESS.mqtt_port, emulator.ca_pem())
        probe = Credentials(created["certificatePem"], created["keyPair"]["PrivateKey"])
        csr = new_key_and_csr(KeyAlgorithm.EC_P256, CLIENT_ID).csr_pem
        with Session(broker, probe, CLIENT_ID) as session:
            # The connection, the policy and the subscriptions work: the emulator answers this one.
            created_keys = session.request(CREATE, {})
            answer = session.request(CREATE_FROM_CSR, {"certificateSigningRequest": csr}, SILENCE_SECONDS)

    assert created_keys is not None
    assert created_keys[0] == "accepted"
    assert answer is None, (
        f"ministack now answers {CREATE_FROM_CSR} itself ({answer[0]}: {sorted(answer[1])}): "
        "the shim local/emulator/ministack_csr_shim.py can be dropped (with its use in local/emulator/ministack_boot.py, "
        "Emulator(csr_shim=...) and its row in docs/local.md); check that ministack's answer has "
        "certificateId, certificatePem and certificateOwnershipToken and that RegisterThing takes the token"
    )
