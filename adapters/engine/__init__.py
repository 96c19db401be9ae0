"""LiteLLM, the translation engine behind the dialects, configured once for this plugin."""
