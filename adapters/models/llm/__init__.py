"""Large language models: chat and completion."""
