"""The five model types Dify loads (provider_configs/dify/provider.yaml lists them): one thin adapter each."""
