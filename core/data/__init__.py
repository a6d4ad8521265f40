"""Data: safe decoding of user images, builtin real images, synthetic degradations."""
