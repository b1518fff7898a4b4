"""The domain: channels, tokens, events, brokers and fan-out. Imports neither grpc nor aiohttp."""
