"""gRPC adapters: thin translations between protobuf requests and hub operations."""
