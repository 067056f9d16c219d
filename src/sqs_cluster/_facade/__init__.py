"""Runtime of the generated blocking facade ``sqs_cluster.sync``: a private loop, views."""
