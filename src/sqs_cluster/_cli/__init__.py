"""The ``sqs-cluster`` command line, the local worker, the demo and the progress display."""
