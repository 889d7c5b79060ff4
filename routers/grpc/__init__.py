"""Dapr's gRPC API beside the HTTP routes: server.py (the grpcio asyncio server), api.py (the
service assembled from one module per building block), errors.py (the gRPC error door)."""
