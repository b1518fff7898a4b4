"""gRPC transport (grpc.aio): interceptors, the LogIngest and LogStream services, reflection."""
