"""l8: a sidecar application runtime that speaks Dapr's HTTP API."""

__version__ = "0.1.0"

# The Dapr HTTP API release whose behaviour l8 reproduces (reported as extended.daprRuntimeVersion).
DAPR_API_VERSION = "1.18.0"
