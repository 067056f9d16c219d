"""The AWS layer: clients, the one semaphore, retries, conditional writes, checks, provisioning."""
