"""Data: safe decoding of user images, builtin real images, synthetic degradations, benchmark datasets and
uploaded ones (imported here so that load_dataset can always read an upload)."""
from core.data import uploads  # noqa: F401  (registers the upload loader with core.data.datasets)
