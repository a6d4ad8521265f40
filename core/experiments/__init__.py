"""Experiments that answer one question with a curve over repeated runs, as background jobs: how many labels a
self-supervised start saves (label_efficiency) and whether GAN samples help a classifier trained on few real
images (synthetic_data). Each stores its points in the job's result (core.experiments.curves)."""
