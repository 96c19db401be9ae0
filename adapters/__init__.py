"""Dify model-provider plugin for Alibaba Cloud AI Gateway: one thin adapter per model type."""
