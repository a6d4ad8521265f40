"""Typed errors whose message is written for the user; pages show them with st.error."""
from __future__ import annotations


class LabError(Exception):
    """Base class: str(error) is a complete, user-facing sentence."""


class InvalidImage(LabError):
    pass


class InvalidInput(LabError):
    pass


class ModelNotFound(LabError):
    pass


class DuplicateModel(LabError):
    pass


class InvalidCheckpoint(LabError):
    pass


class DeviceUnavailable(LabError):
    pass


class WeightsUnavailable(LabError):
    """Pretrained weights could not be found; `how_to` says how to provide them."""

    def __init__(self, model: str, missing: str, how_to: str):
        self.model, self.missing, self.how_to = model, missing, how_to
        super().__init__(f"Pretrained weights for '{model}' are not available: {missing}. {how_to}")
