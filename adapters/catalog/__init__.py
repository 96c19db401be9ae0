"""provider_configs/: loading and checking it, resolving a Dify model to an entry, its Dify schemas."""
