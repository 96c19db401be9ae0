"""Wire dialects: the request bodies and answers of each protocol a gateway route speaks."""
