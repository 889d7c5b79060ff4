"""Pub/sub in the runtime: publishing (CloudEvent envelopes, topic scopes), subscriptions (from the
app and from Subscription resources, with CEL routing rules) and delivery to the app (Dapr's
response contract, retries, dead-letter topics, bulk subscribe)."""
