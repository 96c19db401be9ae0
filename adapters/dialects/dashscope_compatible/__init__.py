"""DashScope's compatible API (/compatible-api/v1/...): its rerank."""
