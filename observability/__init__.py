"""Observability: what an operator reads about a running sidecar (Prometheus metrics).

The lowest floor of the house: every other floor records into it, and it imports none of them.
"""
