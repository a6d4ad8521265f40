"""Metrics in functional form; each value is stored with the convention it was computed under."""
