"""logs-gateway: real-time log gateway, gRPC ingest and Server-Sent Events egress."""
