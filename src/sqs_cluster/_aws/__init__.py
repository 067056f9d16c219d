"""The AWS layer: clients, the one semaphore, retries, conditional writes, checks, provisioning,
and what the library reports (CloudWatch EMF metrics, trace context for X-Ray and OpenTelemetry)."""
