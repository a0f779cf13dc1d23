"""The upper floor: everything that imports TensorFlow/Keras."""
