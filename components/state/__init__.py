"""State stores: the contract (base.py), the query language (query.py) and one module per backend."""
