"""Cohere's rerank wire format, spoken by Cohere, Jina, vLLM and llama.cpp."""
