#!/usr/bin/env bash
# The worker on a laptop, against the embedded local AWS: no AWS account, no credentials.
# By hand it takes two shells: `sqs-cluster local` in one, and in the other the export lines
# it printed, then the worker. This script does both in one shell.
set -euo pipefail
exports=$(mktemp)
sqs-cluster local --port "${PORT:-0}" >"$exports" &  # the local AWS, until stopped
local_aws=$!
trap 'kill -TERM "$local_aws"; wait "$local_aws"; rm -f "$exports"' EXIT  # as Ctrl-C would
until grep -q '^export DLQ_URL=' "$exports"; do sleep 0.2; done
source "$exports"  # SQS_CLUSTER_*, AWS_* (the endpoint, dummy credentials), QUEUE_URL, DLQ_URL

python - <<'PY'  # three orders to work on (the last one fails: its quantity is 0)
import asyncio, os
from sqs_cluster import MessageClient

async def send() -> None:
    async with MessageClient() as client:  # Config.from_env(): the exported variables
        orders = [{"id": n, "quantity": 2 - n} for n in range(3)]
        await client.send_message_batch(os.environ["QUEUE_URL"], orders)

asyncio.run(send())
PY

sqs-cluster worker "$QUEUE_URL" guide_worker:handler \
  --on-startup guide_worker:open_client --on-shutdown guide_worker:close_client "$@"
