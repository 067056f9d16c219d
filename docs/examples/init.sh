#!/usr/bin/env bash
# Create the table, the bucket and a queue with its dead-letter queue; safe to run again.
set -euo pipefail
export SQS_CLUSTER_TABLE=orders-records
export SQS_CLUSTER_BUCKET=orders-globals
sqs-cluster init --queue orders --max-receive-count 5
