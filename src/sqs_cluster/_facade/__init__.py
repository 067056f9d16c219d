"""Hand-written runtime of the blocking facade ``sqs_cluster.sync``: a private loop, views."""
