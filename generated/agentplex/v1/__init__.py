"""Generated protobuf messages and gRPC stubs for agentplex.v1 (run .ci/codegen; do not edit)."""
