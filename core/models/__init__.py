"""Model adapters and the registry; `from core.models.registry import create, list_models`."""
