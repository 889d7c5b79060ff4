"""Actor placement without a placement service: which sidecar hosts an actor (mesh/placement/base.py)."""
