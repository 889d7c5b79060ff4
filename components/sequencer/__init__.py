"""Sequencers: unique, increasing ids per key (components/sequencer/base.py holds the contract)."""
