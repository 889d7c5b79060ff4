"""The HTTP transport: one route table per building block on Dapr's URLs (parse -> service ->
shape), gathered in match order by routers/api.py."""
