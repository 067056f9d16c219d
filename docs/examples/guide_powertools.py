"""Powertools for AWS Lambda and sqs-cluster in one function.

- Powertools' ``event_source`` turns the event into its ``SQSEvent`` data class; sqs-cluster
  accepts it as it is (and Powertools' ``SQSRecord`` wherever a record is expected).
- Powertools' Logger also formats the library's own log lines (stdlib logger ``sqs_cluster``)
  as JSON, with their structured fields: ``message_id``, ``record_key``, ``cluster_key`` and
  ``receive_count``.
- sqs-cluster processes the batch (claims, records, the partial batch response), so the
  function does not also use Powertools' batch processor.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.data_classes import SQSEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from sqs_cluster.sync import Config, MessageClient, PartialBatchResponse, ReceivedMessage

logger = Logger(service="orders")  # JSON lines on stdout; POWERTOOLS_LOG_LEVEL sets the level
copy_config_to_registered_loggers(source_logger=logger, include={"sqs_cluster"})

_client: MessageClient | None = None


def client() -> MessageClient:
    """The container's client: made once, and again only if the configuration changes."""
    global _client
    config = Config.from_env()
    if _client is None or _client.config != config:  # a new configuration: only in tests
        if _client is not None:
            _client.close()
        _client = MessageClient(config)
    return _client


def handle(message: ReceivedMessage[Any]) -> None:
    """One order: a plain message, or a task of a message cluster."""
    order = message.task if message.is_task else message.body
    logger.info("order received", extra={"order_id": order["id"], "message_id": message.message_id})
    if order["quantity"] <= 0:
        raise ValueError(f"order {order['id']}: quantity must be positive")


@logger.inject_lambda_context  # adds the function name, request id and cold start to each line
@event_source(data_class=SQSEvent)
def lambda_handler(event: SQSEvent, context: LambdaContext) -> PartialBatchResponse:
    """The function's entry point: ``guide_powertools.lambda_handler``."""
    return client().safe_process_batch(event, handle)
