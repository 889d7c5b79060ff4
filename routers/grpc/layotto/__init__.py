"""Layotto's gRPC service (spec.proto.runtime.v1.Runtime) beside Dapr's."""
