"""One module per CLI command. Importing any of them must not import TensorFlow: the
commands that train import the upper floor inside their function body."""
