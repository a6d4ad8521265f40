"""Fine-tuning jobs: configuration, data, optimisers, training loops; run inside a job worker."""
