"""Deploy templates/sqs-cluster.yaml with boto3, and configure a client from the stack's outputs."""

from __future__ import annotations

from pathlib import Path

import boto3

from sqs_cluster import Config


def deploy(
    template: Path,
    stack_name: str,
    parameters: dict[str, str] | None = None,
    *,
    region: str,
    endpoint_url: str | None = None,
) -> dict[str, str]:
    """Create the stack, wait until it is complete, and return its outputs."""
    cloudformation = boto3.client("cloudformation", region_name=region, endpoint_url=endpoint_url)
    cloudformation.create_stack(
        StackName=stack_name,
        TemplateBody=template.read_text(),
        Parameters=[
            {"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()
        ],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],  # the SAM transform's role
    )
    cloudformation.get_waiter("stack_create_complete").wait(StackName=stack_name)
    (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    return {output["OutputKey"]: output["OutputValue"] for output in stack["Outputs"]}


def config_for(outputs: dict[str, str], *, region: str, endpoint_url: str | None = None) -> Config:
    """The Config of a deployed stack (a function in the stack gets the same as variables)."""
    return Config(
        table=outputs["TableName"],
        bucket=outputs["BucketName"],
        region=region,
        endpoint_url=endpoint_url,
    )
