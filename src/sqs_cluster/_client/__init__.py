"""``MessageClient``, assembled from its message, queue and cluster halves."""
