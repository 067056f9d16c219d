"""Message clusters: model, plan, fan-out, fan-in, reads, progress, globals, task wire."""
