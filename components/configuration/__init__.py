"""Configuration stores (components/configuration/base.py holds the contract)."""
