"""Traffic governance around service invocation: proxy, name resolution, rate limiting, resiliency,
TCP copy. Filled in by the service-invocation work; nothing here yet."""
