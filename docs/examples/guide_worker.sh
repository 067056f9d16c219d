#!/usr/bin/env bash
# The container's command: one worker process with four pollers. ECS stops a task with
# SIGTERM; the worker then ends its long polls, finishes the batches in flight, deletes what
# succeeded, closes the handler's client (--on-shutdown) and exits.
set -euo pipefail
: "${QUEUE_URL:?set QUEUE_URL}"  # SQS_CLUSTER_TABLE and AWS_REGION come from the task too
exec sqs-cluster worker "$QUEUE_URL" guide_worker:handler --concurrency 4 \
  --on-startup guide_worker:open_client --on-shutdown guide_worker:close_client "$@"
