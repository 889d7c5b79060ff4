"""Pluggable backends, one package per building block, each with one contract in base.py."""
