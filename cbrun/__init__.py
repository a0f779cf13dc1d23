"""cbrun: train Keras models from YAML files, with validated callbacks and exact resume.

This module stays light: importing it must never import TensorFlow or Keras.
"""

__version__ = "0.1.0"
