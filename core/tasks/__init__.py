"""One module per task: preprocess, postprocess, metrics and pictures."""
