"""HTTP transport (aiohttp): the per-request pass, tokens, the SSE stream, publish, the
operations routes, the Logs page and the proxy routes."""
