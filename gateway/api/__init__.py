"""Transports: gRPC servicers and aiohttp handlers that adapt the core."""
