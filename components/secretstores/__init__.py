"""Secret stores: the secrets building block's backends (Dapr's ``secretstores.*`` types)."""
