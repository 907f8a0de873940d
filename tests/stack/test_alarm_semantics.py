"""What the alarms mean: the real hook's EMF output, placed in time, evaluated as CloudWatch evaluates the alarms
the program declares (taken from the Pulumi mock deployment, not restated here).

The evaluator follows CloudWatch's rule for a metric alarm: the statistic of each period, compared with the
threshold; ALARM when ``datapointsToAlarm`` of the last ``evaluationPeriods`` periods breach, a period without
data counting as ``treatMissingData`` says. Metric math (ids, ``FILL``, ``+``, ``-``) and a one-clause
Metrics Insights query (``SELECT f(metric) FROM "namespace" WHERE dimension = 'value'``) are evaluated per
period too; anything else is refused, so an expression the evaluator does not understand cannot pass.
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarm-evaluation.html
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from moto import mock_aws

from fleetctl.operator_transitions import OperatorRecords
from hook import certificate_retirement, certificate_rotation, pre_provisioning, runtime
from hook.contract import METRICS_NAMESPACE_ENV, STACK_BASE_NAME_ENV
from hook.rules import parse_rules, validate_request
from tests.pulumi_mocks import Build, Deployment
from tests.support import (
    RULES,
    TABLE_NAME,
    FakeLambdaContext,
    Fleet,
    RegistryStream,
    certificate_id,
    certificate_signing_request,
    device_certificate,
    device_key,
    fail_once,
    hook_event,
    key_fingerprint,
    valid_parameters,
)
from tests.unit.test_certificate_rotation import (
    JOB_1,
    SERIAL,
    THING,
    csr_event,
    open_rotation_jobs,
    result_event,
)

HOUR = 3600
MAX_PER_HOUR = 20
"""Small, so the fleets below stay a few dozen moto-backed hook calls (each about 50 ms); only ratios matter."""
STEADY = MAX_PER_HOUR * 3 // 5
"""Approvals an hour of a fleet provisioning steadily: 3/5 of the threshold."""
ALARM_THRESHOLD = 10
RULE = "iot_provisioning_dev_thing_created"
TEMPLATE = "iot-provisioning-dev-fleet"

Invoke = Callable[[Any], dict[str, Any]]


# --- data points -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Datum:
    """One value published to CloudWatch at second ``at`` of the test's timeline."""

    namespace: str
    name: str
    dimensions: Mapping[str, str]
    value: float
    at: int


def emf_data(output: str, at: int) -> list[Datum]:
    """The metric values of every EMF document among the output lines, all published at ``at``.

    Each dimension set of a document is a metric of its own, as CloudWatch reads EMF.
    """
    data: list[Datum] = []
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        document = json.loads(line)
        for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
            for dimension_set in directive["Dimensions"]:
                dimensions = {name: document[name] for name in dimension_set}
                for metric in directive["Metrics"]:
                    values = document[metric["Name"]]
                    data.extend(
                        Datum(directive["Namespace"], metric["Name"], dimensions, float(value), at)
                        for value in (values if isinstance(values, list) else [values])
                    )
    return data


def published(
    namespace: str, name: str, dimensions: Mapping[str, str], values: Iterable[float], at: int
) -> list[Datum]:
    """Values published by what the test does not run (AWS IoT, the stale-approvals function): stated."""
    return [Datum(namespace, name, dict(dimensions), value, at) for value in values]


# --- the evaluator -----------------------------------------------------------------------------------------

Series = dict[int, float]
"""Period index -> value; a period without data is absent."""

STATISTICS: dict[str, Callable[[list[float]], float]] = {
    "Sum": sum,
    "Maximum": max,
    "Minimum": min,
    "SampleCount": len,
    "Average": lambda values: sum(values) / len(values),
}
INSIGHTS_FUNCTIONS = {
    "SUM": "Sum",
    "MAX": "Maximum",
    "MIN": "Minimum",
    "COUNT": "SampleCount",
    "AVG": "Average",
}
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": lambda value, threshold: value > threshold,
    "GreaterThanOrEqualToThreshold": lambda value, threshold: value >= threshold,
    "LessThanThreshold": lambda value, threshold: value < threshold,
    "LessThanOrEqualToThreshold": lambda value, threshold: value <= threshold,
}
INSIGHTS_QUERY = re.compile(
    r"SELECT (?P<function>SUM|MAX|MIN|COUNT|AVG)\((?P<metric>\w+)\) FROM \"(?P<namespace>[^\"]+)\""
    r"( WHERE (?P<key>\w+) = '(?P<value>[^']*)')?"
)


def series(
    data: list[Datum],
    period: int,
    statistic: str,
    matches: Callable[[Datum], bool],
) -> Series:
    """The statistic per period of the data that ``matches``."""
    buckets: dict[int, list[float]] = {}
    for datum in data:
        if matches(datum):
            buckets.setdefault(datum.at // period, []).append(datum.value)
    return {index: STATISTICS[statistic](values) for index, values in buckets.items()}


def one_metric(namespace: str, name: str, dimensions: Mapping[str, str]) -> Callable[[Datum], bool]:
    """CloudWatch identifies a metric by namespace, name and its whole dimension set."""
    return lambda d: (d.namespace, d.name, dict(d.dimensions)) == (namespace, name, dict(dimensions))


def insights_series(query: str, data: list[Datum], period: int) -> Series:
    match = INSIGHTS_QUERY.fullmatch(query)
    assert match, f"the evaluator does not understand the Metrics Insights query {query!r}"
    key, value = match["key"], match["value"]

    def matches(d: Datum) -> bool:
        # Without SCHEMA(...), the query takes the metric under every dimension set; WHERE filters one key.
        return (d.namespace, d.name) == (match["namespace"], match["metric"]) and (
            key is None or d.dimensions.get(key) == value
        )

    return series(data, period, INSIGHTS_FUNCTIONS[match["function"]], matches)


def math(expression: str, variables: dict[str, Series], periods: range) -> Series:
    """A metric math expression of ids, numbers, ``FILL(series, number)``, ``+`` and ``-``, per period."""

    def at(node: ast.expr, index: int) -> float | None:
        if isinstance(node, ast.Name):
            return variables[node.id].get(index)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "FILL":
            [filled, fill] = node.args
            value = at(filled, index)
            return at(fill, index) if value is None else value
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub):
            left, right = at(node.left, index), at(node.right, index)
            if left is None or right is None:
                return None
            return left + right if isinstance(node.op, ast.Add) else left - right
        raise AssertionError(f"the evaluator does not understand {ast.dump(node)} in {expression!r}")

    tree = ast.parse(expression, mode="eval").body
    values = {index: at(tree, index) for index in periods}
    return {index: value for index, value in values.items() if value is not None}


def alarm_period(alarm: dict[str, Any]) -> int:
    """The alarm's period: its metric's, its Metrics Insights query's, or the one its math metrics share."""
    if "metricQueries" not in alarm:
        return int(alarm["period"])
    queries = alarm["metricQueries"]
    periods = {int(query["metric"]["period"]) for query in queries if "metric" in query}
    periods |= {int(query["period"]) for query in queries if "period" in query}
    [period] = periods  # CloudWatch requires every metric of an alarm's expression to use the same period
    return period


def alarm_series(alarm: dict[str, Any], data: list[Datum], periods: range) -> Series:
    """The values the alarm compares with its threshold."""
    period = alarm_period(alarm)
    if "metricQueries" not in alarm:
        statistic = alarm.get("statistic") or alarm["extendedStatistic"]
        return series(
            data, period, statistic, one_metric(alarm["namespace"], alarm["metricName"], alarm["dimensions"])
        )
    queries = alarm["metricQueries"]
    [returned] = [query for query in queries if query["returnData"]]
    metrics = {query["id"]: query["metric"] for query in queries if "metric" in query}
    if not metrics:
        return insights_series(returned["expression"], data, period)
    variables = {
        query_id: series(
            data,
            period,
            metric["stat"],
            one_metric(metric["namespace"], metric["metricName"], metric["dimensions"]),
        )
        for query_id, metric in metrics.items()
    }
    return math(returned["expression"], variables, periods)


def evaluate(alarm: dict[str, Any], data: list[Datum], until: int) -> tuple[list[float | None], list[str]]:
    """Each period's value and the alarm's state at its end, for the periods from second 0 up to ``until``."""
    periods = range(until // alarm_period(alarm))
    values = alarm_series(alarm, data, periods)
    treat_missing = alarm.get("treatMissingData", "missing")
    assert treat_missing in {"notBreaching", "breaching"}, f"the evaluator does not model {treat_missing}"
    compare = COMPARISONS[alarm["comparisonOperator"]]
    breaching = [
        (treat_missing == "breaching") if index not in values else compare(values[index], alarm["threshold"])
        for index in periods
    ]
    evaluation_periods = int(alarm["evaluationPeriods"])
    datapoints_to_alarm = int(alarm.get("datapointsToAlarm") or evaluation_periods)
    states = [
        "ALARM"
        if sum(breaching[max(0, index - evaluation_periods + 1) : index + 1]) >= datapoints_to_alarm
        else "OK"
        for index in periods
    ]
    return [values.get(index) for index in periods], states


# --- the deployment and the hook ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployment(build: Build) -> Deployment:
    return build(
        {"aws:region": "us-east-1", "maxProvisioningPerHour": MAX_PER_HOUR, "alarmThreshold": ALARM_THRESHOLD}
    )


@pytest.fixture(scope="module")
def namespace(deployment: Deployment) -> str:
    """The metrics namespace the program deploys the functions with (all of them share it)."""
    namespaces = {
        function.inputs["environment"]["variables"][METRICS_NAMESPACE_ENV]
        for function in deployment.mocks.of_type("aws:lambda/function:Function")
    }
    [only] = namespaces
    return str(only)


@pytest.fixture(scope="module")
def declared(deployment: Deployment) -> dict[str, dict[str, Any]]:
    return {
        alarm.inputs["name"].removeprefix("iot-provisioning-dev-"): alarm.inputs
        for alarm in deployment.mocks.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    }


@dataclass
class Hook:
    """The configured hook; ``devices`` counts the approvals, so each approval is a new device."""

    invoke: Invoke
    output: pytest.CaptureFixture[str]
    devices: int = 0

    def approve(self, count: int, claim_certificate_id: str, at: int) -> list[Datum]:
        """``count`` new devices provisioning through a claim certificate, all approved; their EMF data."""
        self.output.readouterr()
        for _ in range(count):
            self.devices += 1
            event = hook_event(
                valid_parameters(SerialNumber=f"TS-{self.devices:06d}"), certificate=f"device-{self.devices}"
            )
            answer = self.invoke(event | {"claimCertificateId": claim_certificate_id})
            assert answer["allowProvisioning"] is True
        return emf_data(self.output.readouterr().out, at)

    def deny(self, count: int, at: int) -> list[Datum]:
        """``count`` requests the hook denies (an unknown device type); their EMF data."""
        self.output.readouterr()
        for _ in range(count):
            answer = self.invoke(hook_event(valid_parameters(DeviceType="toaster")))
            assert answer["allowProvisioning"] is False
        return emf_data(self.output.readouterr().out, at)


@pytest.fixture
def hook(
    configure_hook: Any,
    hook_output: pytest.CaptureFixture[str],
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Hook:
    # A cold start with the deployed environment: the hook reads its namespace from it once, for its
    # invocation's metrics and for its counts under a second dimension.
    for emitter in (pre_provisioning.metrics, pre_provisioning._counts_by_dimension):
        monkeypatch.setattr(emitter, "namespace", namespace)
    return Hook(lambda event: pre_provisioning.lambda_handler(event, FakeLambdaContext()), hook_output)


def watched_claim_certificate(alarm: dict[str, Any]) -> str:
    claim_certificate_id: str = alarm["dimensions"]["ClaimCertificateId"]
    return claim_certificate_id


# --- claim abuse -------------------------------------------------------------------------------------------


def test_a_large_fleet_provisioning_steadily_never_raises_claim_abuse(
    declared: dict[str, dict[str, Any]], hook: Hook
) -> None:
    alarm = declared["claim-abuse-1"]
    claim = watched_claim_certificate(alarm)
    data = [datum for hour in range(5) for datum in hook.approve(STEADY, claim, at=hour * HOUR)]
    values, states = evaluate(alarm, data, until=5 * HOUR)
    assert hook.devices == 5 * STEADY == 3 * MAX_PER_HOUR
    assert values == [STEADY] * 5
    assert states == ["OK"] * 5


def test_a_burst_through_the_claim_certificate_raises_claim_abuse_in_its_hour(
    declared: dict[str, dict[str, Any]], hook: Hook
) -> None:
    alarm = declared["claim-abuse-1"]
    claim = watched_claim_certificate(alarm)
    burst = MAX_PER_HOUR * 3 // 2
    data = [
        *hook.approve(STEADY, claim, at=0),
        *hook.approve(burst, claim, at=HOUR + 1800),
        *hook.approve(MAX_PER_HOUR, claim, at=2 * HOUR + 59),
    ]
    values, states = evaluate(alarm, data, until=4 * HOUR)
    assert values == [STEADY, burst, MAX_PER_HOUR, None]
    assert states == ["OK", "ALARM", "OK", "OK"], "above the threshold, not at it; a quiet hour recovers"


def test_approvals_through_another_claim_certificate_do_not_count_for_this_generation(
    declared: dict[str, dict[str, Any]], hook: Hook
) -> None:
    alarm = declared["claim-abuse-1"]
    claim = watched_claim_certificate(alarm)
    elsewhere = certificate_id("another-claim-certificate")
    data = [*hook.approve(STEADY, claim, at=0), *hook.approve(STEADY, elsewhere, at=600)]
    assert hook.devices == 2 * STEADY > MAX_PER_HOUR
    assert evaluate(alarm, data, until=HOUR) == ([STEADY], ["OK"])
    more = MAX_PER_HOUR + 1 - STEADY
    data += hook.approve(more, claim, at=1200)
    assert evaluate(alarm, data, until=HOUR) == ([MAX_PER_HOUR + 1], ["ALARM"])


# --- rejections and RegisterThing failures -----------------------------------------------------------------


def register_thing_results(failures: int, successes: int, at: int) -> list[Datum]:
    """``AWS/IoT RegisterThingFailed`` as AWS IoT emits it: 1 per failed RegisterThing, 0 per success."""
    return published(
        "AWS/IoT", "RegisterThingFailed", {"TemplateName": TEMPLATE}, [1.0] * failures + [0.0] * successes, at
    )


def test_hook_denials_raise_provisioning_rejected_but_not_register_thing_failed(
    declared: dict[str, dict[str, Any]], hook: Hook
) -> None:
    claim = watched_claim_certificate(declared["claim-abuse-1"])
    data = [
        *hook.approve(5, claim, at=10),
        *hook.deny(ALARM_THRESHOLD, at=20),
        # Each denied RegisterThing fails; each approved one succeeds.
        *register_thing_results(failures=ALARM_THRESHOLD, successes=5, at=21),
    ]
    assert evaluate(declared["provisioning-rejected"], data, until=300) == ([ALARM_THRESHOLD], ["ALARM"])
    assert evaluate(declared["register-thing-failed"], data, until=300) == ([0], ["OK"])


def test_register_thing_failures_the_hook_did_not_cause_raise_register_thing_failed_alone(
    declared: dict[str, dict[str, Any]], hook: Hook
) -> None:
    claim = watched_claim_certificate(declared["claim-abuse-1"])
    data = [
        # Approved by the hook, then refused by AWS IoT (a broken template, role or policy).
        *hook.approve(ALARM_THRESHOLD, claim, at=10),
        *register_thing_results(failures=ALARM_THRESHOLD, successes=0, at=11),
        # Next period: the hook denies 3 and AWS IoT fails 3 more than those.
        *hook.deny(3, at=310),
        *register_thing_results(failures=3 + ALARM_THRESHOLD, successes=0, at=311),
    ]
    assert evaluate(declared["provisioning-rejected"], data, until=600) == ([None, 3], ["OK", "OK"])
    assert evaluate(declared["register-thing-failed"], data, until=600) == (
        [ALARM_THRESHOLD, ALARM_THRESHOLD],
        ["ALARM", "ALARM"],
    )


# --- key binding --------------------------------------------------------------------------------------------


def test_a_certificate_of_another_key_raises_key_binding_rejected_and_ordinary_denials_do_not(
    declared: dict[str, dict[str, Any]],
    hook: Hook,
    configure_hook: Callable[[dict[str, Any]], None],
    dynamodb: Any,
    namespace: str,
) -> None:
    alarm = declared["key-binding-rejected"]
    binding = RULES["deviceTypes"]["temperature-sensor"] | {"keyBinding": True}
    configure_hook(RULES | {"deviceTypes": RULES["deviceTypes"] | {"temperature-sensor": binding}})
    request = validate_request(valid_parameters(), parse_rules(RULES))
    OperatorRecords(dynamodb, TABLE_NAME).preregister(
        request, "2026-01-01T00:00:00.000Z", key_fingerprint(device_key())
    )
    attacker = hook_event(valid_parameters()) | {"certificatePem": device_certificate(device_key())}
    ordinary = hook.deny(ALARM_THRESHOLD, at=10)  # unknown device types: provisioning-rejected's business
    hook.output.readouterr()
    assert hook.invoke(attacker)["allowProvisioning"] is False
    attack = emf_data(hook.output.readouterr().out, at=310)
    # The rotation function's count of a CSR of another key, as it publishes it: its own alarm's business.
    rotation_attempt = published(
        namespace, "KeyBindingRejected", {"service": "certificate-rotation"}, [1.0], 910
    )
    data = [*ordinary, *attack, *rotation_attempt]
    assert evaluate(alarm, data, until=1200) == ([None, 1, None, None], ["OK", "ALARM", "OK", "OK"])
    rotation_alarm = declared["rotation-key-binding-rejected"]
    assert evaluate(rotation_alarm, data, until=1200) == ([None, None, None, 1], ["OK", "OK", "OK", "ALARM"])


# --- activation rule and thing events ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "action_type", ["Lambda", "lambda", "LambdaAction", "an ActionType AWS never documented"]
)
def test_activation_rule_failures_count_whatever_the_action_type_is_called(
    declared: dict[str, dict[str, Any]], action_type: str
) -> None:
    alarm = declared["activation-rule-failures"]
    failure = published("AWS/IoT", "Failure", {"RuleName": RULE, "ActionType": action_type}, [1.0], at=30)
    other_rule = published(
        "AWS/IoT", "Failure", {"RuleName": "another_rule", "ActionType": action_type}, [1.0], 330
    )
    success = published("AWS/IoT", "Success", {"RuleName": RULE, "ActionType": action_type}, [1.0], at=630)
    assert evaluate(alarm, [*failure, *other_rule, *success], until=900) == (
        [1, None, None],
        ["ALARM", "OK", "OK"],
    )


def test_thing_events_disabled_raises_while_a_report_says_so(
    declared: dict[str, dict[str, Any]], namespace: str
) -> None:
    alarm = declared["thing-events-disabled"]

    def report(value: float, at: int) -> list[Datum]:
        return published(namespace, "ThingEventsDisabled", {"service": "stale-approvals"}, [value], at)

    # The stale-approvals function reports every 15 minutes.
    data = [*report(0, 60), *report(1, 960), *report(1, 1860), *report(0, 2760)]
    assert evaluate(alarm, data, until=3600) == ([0, 1, 1, 0], ["OK", "ALARM", "ALARM", "OK"])


# --- certificate rotation ----------------------------------------------------------------------------------


@dataclass
class Rotation:
    """The rotation function of the moto ``fleet``, publishing in the deployed namespace."""

    output: pytest.CaptureFixture[str]

    def steps(self, events: Iterable[dict[str, Any]], at: int) -> list[Datum]:
        """Hand ``events`` to the function as the rotation rule does; their EMF data, published at ``at``."""
        self.output.readouterr()
        for event in events:
            certificate_rotation.lambda_handler(event, FakeLambdaContext())
        return emf_data(self.output.readouterr().out, at)


@pytest.fixture
def rotation(
    fleet: Fleet,
    stream: RegistryStream,
    namespace: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Rotation:
    monkeypatch.setattr(certificate_rotation.metrics, "namespace", namespace)
    return Rotation(capsys)


def junk(caller: str) -> list[dict[str, Any]]:
    """Steps a device can send at will: malformed, and CSRs and failures of jobs it has no execution of."""
    return [
        {**csr_event(caller), "jobId": "not a job id"},
        csr_event(caller, job_id=f"{JOB_1}9"),
        result_event(caller, "FAILED", job_id=f"{JOB_1}9"),
    ]


@pytest.mark.filterwarnings("ignore:No application metrics to publish")  # the ignored steps count nothing
def test_one_device_looping_a_rotation_job_raises_rotation_failed_once_not_for_good(
    declared: dict[str, dict[str, Any]], fleet: Fleet, rotation: Rotation
) -> None:
    """A device sends CSR then FAILED in one open execution, and steps of no job, for two hours: the job's
    failed attempt raises the alarm in its hour; nothing else the device sends keeps it there."""
    alarm = declared["rotation-failed"]
    current = fleet.provision(SERIAL)
    open_rotation_jobs(fleet, JOB_1)
    loop = [csr_event(current), result_event(current, "FAILED")] * 3
    data = [*rotation.steps([*loop, *junk(current)], at=60)]
    data += rotation.steps([*loop, *junk(current)] * 2, at=HOUR + 60)
    assert evaluate(alarm, data, until=2 * HOUR) == ([1, None], ["ALARM", "OK"])


@pytest.mark.filterwarnings("ignore:No application metrics to publish")  # the ignored steps count nothing
def test_a_stolen_certificate_raises_rotation_key_binding_rejected_once_per_job(
    declared: dict[str, dict[str, Any]], fleet: Fleet, registry: OperatorRecords, rotation: Rotation
) -> None:
    """Whoever holds a bound device's certificate sends CSRs of their own key every five minutes: without an
    open execution they count nothing, and in one they count once; the hook's alarm hears none of it."""
    key = device_key()
    request = validate_request(valid_parameters(SerialNumber=SERIAL), parse_rules(RULES))
    registry.preregister(request, "2026-01-01T00:00:00.000Z", key_fingerprint(key))
    current = fleet.provision(SERIAL, certificate_pem=device_certificate(key, THING))
    open_rotation_jobs(fleet, JOB_1)

    def another_key(job_id: str) -> dict[str, Any]:
        return csr_event(current, job_id=job_id, csr=certificate_signing_request(THING, device_key()))

    data = rotation.steps([another_key(f"{JOB_1}{each}") for each in range(3)], at=60)
    for period in range(1, 4):
        data += rotation.steps([another_key(JOB_1)], at=period * 300 + 60)
    assert evaluate(declared["rotation-key-binding-rejected"], data, until=1200) == (
        [None, 1, None, None],
        ["OK", "ALARM", "OK", "OK"],
    )
    assert evaluate(declared["key-binding-rejected"], data, until=1200)[1] == ["OK"] * 4


# --- certificate retirement --------------------------------------------------------------------------------


def _stream_record(sequence: str, old: dict[str, str], new: dict[str, str]) -> dict[str, Any]:
    """A MODIFY record of the registry's stream as Lambda delivers it to the retirement function."""

    def typed(image: dict[str, str]) -> dict[str, dict[str, str]]:
        return {name: {"S": value} for name, value in image.items()}

    return {
        "eventID": sequence,
        "eventName": "MODIFY",
        "eventSource": "aws:dynamodb",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-01-01T00:00:00.000",
        "dynamodb": {
            "Keys": {"serialNumber": {"S": old["serialNumber"]}},
            "OldImage": typed(old),
            "NewImage": typed(new),
            "SequenceNumber": sequence,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


@pytest.mark.filterwarnings("ignore:No application metrics to publish")  # the retirement that finds nothing
def test_a_failed_retirement_raises_retirement_failed_once_in_its_hour(
    declared: dict[str, dict[str, Any]],
    namespace: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alarm = declared["retirement-failed"]
    monkeypatch.setenv(STACK_BASE_NAME_ENV, "iot-provisioning-dev")
    monkeypatch.setattr(certificate_retirement.metrics, "namespace", namespace)
    active = {
        "serialNumber": "TS-000001",
        "status": "ACTIVE",
        "deviceType": "gateway",
        "certificateId": certificate_id("old"),
    }
    rotated = {**active, "certificateId": certificate_id("new")}
    batch = {"Records": [_stream_record("100", active, rotated)]}
    with mock_aws():
        runtime.reset()
        capsys.readouterr()
        # The old certificate does not exist: retired already, nothing failed.
        assert certificate_retirement.lambda_handler(batch, FakeLambdaContext()) == {"batchItemFailures": []}
        quiet = emf_data(capsys.readouterr().out, at=60)
        fail_once(monkeypatch, "DescribeCertificate", "UnauthorizedException")
        runtime.reset()
        with pytest.raises(BatchProcessingError):  # the whole batch failed: Lambda retries it
            certificate_retirement.lambda_handler(batch, FakeLambdaContext())
        failed = emf_data(capsys.readouterr().out, at=HOUR + 60)
    runtime.reset()
    assert evaluate(alarm, [*quiet, *failed], until=2 * HOUR) == ([None, 1], ["OK", "ALARM"])


def test_retirement_iterator_age_raises_only_past_an_hour_behind(declared: dict[str, dict[str, Any]]) -> None:
    alarm = declared["retirement-iterator-age"]
    function = {"FunctionName": "iot-provisioning-dev-certificate-retirement"}
    minute = 60_000
    data = [
        *published("AWS/Lambda", "IteratorAge", function, [200, 45 * minute], at=30),
        *published("AWS/Lambda", "IteratorAge", function, [60 * minute], at=330),
        *published("AWS/Lambda", "IteratorAge", function, [500, 61 * minute], at=630),
    ]
    assert evaluate(alarm, data, until=900) == (
        [45 * minute, 60 * minute, 61 * minute],
        ["OK", "OK", "ALARM"],
    )


def test_claim_breaker_iterator_age_raises_past_a_minute_behind(declared: dict[str, dict[str, Any]]) -> None:
    # A breaker a minute behind the stream trips a minute late: the documented bound is about a second.
    alarm = declared["claim-breaker-iterator-age"]
    function = {"FunctionName": "iot-provisioning-dev-claim-breaker"}
    data = [
        *published("AWS/Lambda", "IteratorAge", function, [200, 900], at=30),
        *published("AWS/Lambda", "IteratorAge", function, [60_000], at=330),
        *published("AWS/Lambda", "IteratorAge", function, [300, 61_000], at=630),
    ]
    assert evaluate(alarm, data, until=900) == ([900, 60_000, 61_000], ["OK", "OK", "ALARM"])


def test_a_batch_given_up_on_raises_retirement_failures_queued_while_it_waits(
    declared: dict[str, dict[str, Any]],
) -> None:
    alarm = declared["retirement-failures-queued"]
    queue = {"QueueName": "iot-provisioning-dev-certificate-retirement-failures"}
    # SQS reports the queue's depth every minute while it is active: empty, then one message, then read.
    depths = [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0]
    data = [
        datum
        for minute, depth in enumerate(depths)
        for datum in published(
            "AWS/SQS", "ApproximateNumberOfMessagesVisible", queue, [depth], at=minute * 60
        )
    ]
    assert evaluate(alarm, data, until=900) == ([0, 1, 0], ["OK", "ALARM", "OK"])


# --- the registry --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alarm_name", ["registry-throttles", "registry-system-errors"])
def test_one_registry_metric_alone_raises_its_alarm(
    deployment: Deployment, declared: dict[str, dict[str, Any]], alarm_name: str
) -> None:
    alarm = declared[alarm_name]
    [table] = deployment.mocks.of_type("aws:dynamodb/table:Table")
    metrics = [query["metric"] for query in alarm["metricQueries"] if "metric" in query]
    assert {metric["dimensions"]["TableName"] for metric in metrics} == {table.inputs["name"]}
    # DynamoDB sends a metric only in a period where it is not zero: the others have no datapoint then.
    first, last = metrics[0], metrics[-1]
    data = [
        *published("AWS/DynamoDB", first["metricName"], first["dimensions"], [3.0], at=30),
        *published("AWS/DynamoDB", last["metricName"], last["dimensions"], [2.0], at=630),
    ]
    assert evaluate(alarm, data, until=900) == ([3, 0, 2], ["ALARM", "OK", "ALARM"])
