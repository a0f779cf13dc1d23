"""cbrun/config/keras_api.json records what Keras accepts so validation never imports TensorFlow;
it must match the Keras the suite runs with."""

import json

from cbrun.config import keras_api


def test_recorded_api_matches_installed_keras():
    recorded = keras_api.api()
    fresh = json.loads(json.dumps(keras_api.generate()))
    assert recorded["keras_version"] == fresh["keras_version"]
    assert recorded == fresh, "run `python -m cbrun.config.keras_api` after upgrading Keras"


def test_recorded_api_knows_what_the_examples_use():
    assert "units" in keras_api.layer_params("Dense")
    assert "rate" in keras_api.layer_params("Dropout")
    assert keras_api.optimizer_class("adam") == "Adam"
    assert keras_api.metric_direction("accuracy") == "up"
    assert keras_api.metric_direction("mae") == "down"
    assert keras_api.layer_params("Dens") is None


def test_recorded_api_knows_the_names_layer_arguments_take():
    """The names `keras.<module>.get` accepts, for checking layer arguments without Keras."""
    assert "softmax" in keras_api.names_of("activations")
    assert "Softmax" not in keras_api.names_of("activations")  # Keras is case-sensitive
    assert {"glorot_uniform", "GlorotUniform", "uniform"} <= set(
        keras_api.names_of("initializers"))
    assert {"l2", "L1L2"} <= set(keras_api.names_of("regularizers"))
    assert "max_norm" in keras_api.names_of("constraints")
    # The abstract bases resolve in Keras but fail when a weight is made: not offered.
    assert "Initializer" not in keras_api.names_of("initializers")
    assert "Regularizer" not in keras_api.names_of("regularizers")
