"""DashScope's native wire formats (Alibaba Cloud Model Studio): embeddings, text rerank, qwen-tts."""
