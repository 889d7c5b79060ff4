"""Distributed lock stores (components/lock/base.py holds the contract)."""
