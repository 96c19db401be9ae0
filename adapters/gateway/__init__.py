"""The gateway client: endpoint, consumer auth, transport with retries, error mapping, server-sent events."""
