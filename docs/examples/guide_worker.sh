#!/usr/bin/env bash
# The container's command: one worker process with four pollers. ECS stops a task with
# SIGTERM; the worker then finishes the batches in flight, deletes what succeeded and exits.
set -euo pipefail
: "${QUEUE_URL:?set QUEUE_URL}"  # SQS_CLUSTER_TABLE and AWS_REGION come from the task too
exec sqs-cluster worker "$QUEUE_URL" guide_worker:handler --concurrency 4 "$@"
