"""Callback specs: one pydantic class per callback, and the registry that unites them.

Lower floor: the classes here import Keras only inside `build()`.
"""
