"""Model adapters, the table they register in (spec) and the front door: `from core.models.registry import create, list_models`."""
