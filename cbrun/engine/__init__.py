"""The TensorFlow floor: every module that imports TensorFlow or Keras at its top, and only
these. Training (session.py), the data pipelines and sources, the model builders, cbrun's
own Keras callbacks, evaluation, prediction and export. The rest of cbrun reaches it only
through the entry points docs/ARCHITECTURE.md lists (a test checks the imports).

Importing this package itself imports nothing heavy.
"""
