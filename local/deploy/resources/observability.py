"""Log groups, alarms, the dashboard, the alert topic and its KMS key."""

from __future__ import annotations

from typing import Any

from local.deploy.resources.creators import Created, Emulated, auto_name, creates, number, tag_list


@creates("aws:cloudwatch/logGroup:LogGroup")
def log_group(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """A log group with its retention."""
    client = emulated.client("logs")
    group_name = auto_name(name, inputs)
    client.create_log_group(logGroupName=group_name, tags=inputs.get("tags") or {})
    retention = number(inputs, "retentionInDays")
    if retention:
        client.put_retention_policy(logGroupName=group_name, retentionInDays=retention)
    arn = f"arn:aws:logs:{emulated.region}:{emulated.account_id}:log-group:{group_name}"
    return group_name, {**inputs, "name": group_name, "arn": arn}


def _dimensions(dimensions: dict[str, str] | None) -> list[dict[str, str]]:
    return [{"Name": key, "Value": value} for key, value in (dimensions or {}).items()]


def _metric_query(query: dict[str, Any]) -> dict[str, Any]:
    declared: dict[str, Any] = {"Id": query["id"], "ReturnData": bool(query.get("returnData", False))}
    for key, api_key in (("expression", "Expression"), ("label", "Label")):
        if query.get(key):
            declared[api_key] = query[key]
    metric = query.get("metric")
    if metric:
        declared["MetricStat"] = {
            "Metric": {
                "Namespace": metric["namespace"],
                "MetricName": metric["metricName"],
                "Dimensions": _dimensions(metric.get("dimensions")),
            },
            "Period": number(metric, "period"),
            "Stat": metric["stat"],
        }
    return declared


@creates("aws:cloudwatch/metricAlarm:MetricAlarm")
def metric_alarm(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """An alarm on one metric, or on metric math over several."""
    alarm_name = auto_name(name, inputs)
    request: dict[str, Any] = {
        "AlarmName": alarm_name,
        "AlarmDescription": inputs.get("alarmDescription", ""),
        "Threshold": float(inputs["threshold"]),
        "ComparisonOperator": inputs["comparisonOperator"],
        "EvaluationPeriods": number(inputs, "evaluationPeriods"),
        "TreatMissingData": inputs.get("treatMissingData", "missing"),
        "ActionsEnabled": bool(inputs.get("actionsEnabled", True)),
        "AlarmActions": list(inputs.get("alarmActions") or []),
        "OKActions": list(inputs.get("okActions") or []),
        "Tags": tag_list(inputs),
    }
    if inputs.get("metricQueries"):
        request["Metrics"] = [_metric_query(query) for query in inputs["metricQueries"]]
    else:
        request.update(
            Namespace=inputs["namespace"],
            MetricName=inputs["metricName"],
            Dimensions=_dimensions(inputs.get("dimensions")),
            Period=number(inputs, "period"),
        )
        if inputs.get("extendedStatistic"):
            request["ExtendedStatistic"] = inputs["extendedStatistic"]
        else:
            request["Statistic"] = inputs["statistic"]
    emulated.client("cloudwatch").put_metric_alarm(**request)
    arn = f"arn:aws:cloudwatch:{emulated.region}:{emulated.account_id}:alarm:{alarm_name}"
    return alarm_name, {**inputs, "name": alarm_name, "arn": arn}


@creates("aws:cloudwatch/dashboard:Dashboard")
def dashboard(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """A CloudWatch dashboard."""
    emulated.client("cloudwatch").put_dashboard(
        DashboardName=inputs["dashboardName"], DashboardBody=inputs["dashboardBody"]
    )
    arn = f"arn:aws:cloudwatch::{emulated.account_id}:dashboard/{inputs['dashboardName']}"
    return inputs["dashboardName"], {**inputs, "dashboardArn": arn}


@creates("aws:kms/key:Key")
def kms_key(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """A symmetric KMS key with its key policy and rotation."""
    client = emulated.client("kms")
    request: dict[str, Any] = {
        "Description": inputs.get("description", ""),
        "Tags": tag_list(inputs, "TagKey", "TagValue"),
    }
    if inputs.get("policy"):
        request["Policy"] = inputs["policy"]
    key = client.create_key(**request)["KeyMetadata"]
    if inputs.get("enableKeyRotation"):
        client.enable_key_rotation(KeyId=key["KeyId"])
    return key["KeyId"], {**inputs, "arn": key["Arn"], "keyId": key["KeyId"]}


@creates("aws:kms/alias:Alias")
def kms_alias(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """An alias of a KMS key."""
    emulated.client("kms").create_alias(AliasName=inputs["name"], TargetKeyId=inputs["targetKeyId"])
    arn = f"arn:aws:kms:{emulated.region}:{emulated.account_id}:{inputs['name']}"
    return inputs["name"], {**inputs, "arn": arn}


@creates("aws:sns/topic:Topic")
def topic(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """An SNS topic, encrypted with its KMS key when one is given."""
    attributes = {"KmsMasterKeyId": inputs["kmsMasterKeyId"]} if inputs.get("kmsMasterKeyId") else {}
    topic_name = auto_name(name, inputs)
    arn = emulated.client("sns").create_topic(Name=topic_name, Attributes=attributes, Tags=tag_list(inputs))[
        "TopicArn"
    ]
    return arn, {**inputs, "name": topic_name, "arn": arn}


@creates("aws:sns/topicPolicy:TopicPolicy")
def topic_policy(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """The access policy of a topic."""
    emulated.client("sns").set_topic_attributes(
        TopicArn=inputs["arn"], AttributeName="Policy", AttributeValue=inputs["policy"]
    )
    return inputs["arn"], dict(inputs)


@creates("aws:sns/topicSubscription:TopicSubscription")
def topic_subscription(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """A subscription of a topic (an e-mail one stays pending: nobody confirms it locally)."""
    arn = emulated.client("sns").subscribe(
        TopicArn=inputs["topic"],
        Protocol=inputs["protocol"],
        Endpoint=inputs["endpoint"],
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]
    return arn, {**inputs, "arn": arn}
