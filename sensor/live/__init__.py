"""Live capture: AF_PACKET rings, worker processes, metrics, status, service glue."""
