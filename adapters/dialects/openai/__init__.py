"""OpenAI-compatible wire formats: chat, completion, embeddings, transcription, speech."""
