"""The operations dashboard of ``sqs-cluster dashboard``: recent clusters, a cluster's failed
tasks and queue depths, live, on a local web page (aiohttp, imported only when it runs)."""
