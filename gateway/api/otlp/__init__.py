"""OTLP logs export, over both gRPC and HTTP: decoding, conversion to entries, the answers."""
