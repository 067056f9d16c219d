#!/usr/bin/env bash
# The operations dashboard of one table, on http://127.0.0.1:8000/ (this machine only).
set -euo pipefail
export SQS_CLUSTER_TABLE=orders-records
export SQS_CLUSTER_BUCKET=orders-globals
sqs-cluster init  # once: adds the index gsi1 to a table made before it (safe to run again)
exec sqs-cluster dashboard --port "${DASHBOARD_PORT:-8000}"
