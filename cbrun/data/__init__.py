"""Data without TensorFlow: which rows form each split, and what the data holds."""
