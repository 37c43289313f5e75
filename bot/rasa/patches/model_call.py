"""DIET's prediction graph called straight, past tf.function's matching of its arguments.

Rasa wraps a model's prediction step in a `tf.function` with one input signature, so the
graph is traced once and every message runs that same graph. Yet each call still goes
through tf.function's dispatch, which matches the arguments against the signature again
and converts them on the way: 7% of the Rasa process's busy time in `make bench`, about a
third of the call. Here the arrays are converted to the signature's types and handed to
the traced graph directly. An array of another type or rank than the signature's goes the
usual way, to get tf.function's own error.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import tensorflow as tf
from keras.utils import tf_utils
from rasa.shared.constants import DIAGNOSTIC_DATA
from rasa.utils.tensorflow.models import RasaModel


def fits(batch: tuple[np.ndarray, ...], signature: list[tf.TensorSpec]) -> bool:
    """The arrays have the signature's types and ranks (its free sizes take any value)."""
    return len(batch) == len(signature) and all(
        isinstance(array, np.ndarray) and array.dtype == spec.dtype.as_numpy_dtype
        and spec.shape.is_compatible_with(array.shape)
        for array, spec in zip(batch, signature, strict=True))


def install() -> None:
    """`RasaModel._rasa_predict` runs the traced graph of its prediction step directly (once
    per process)."""
    original = RasaModel._rasa_predict
    if getattr(original, "__wrapped__", None) is not None:
        return

    @functools.wraps(original)
    def _rasa_predict(self: RasaModel, batch_in: tuple[np.ndarray, ...]) -> dict[str, Any]:
        graph = self.__dict__.get("_traced_predict_step")
        if graph is None or self._tf_predict_step is not graph[0] \
                or not fits(batch_in, graph[1]):
            # The first call traces (or a later one raises) the way Rasa does.
            outputs = original(self, batch_in)
            function = self._tf_predict_step
            if function is not None and (graph is None or graph[0] is not function):
                signature = list(function.input_signature[0])
                self.__dict__["_traced_predict_step"] = (
                    function, signature, function.get_concrete_function())
            return outputs
        self._training = False
        concrete = graph[2]
        result = concrete._call_flat([tf.constant(array) for array in batch_in],
                                     concrete.captured_inputs)
        # What Rasa does with the function's answer.
        outputs = tf_utils.sync_to_numpy_or_python_type(result)
        if DIAGNOSTIC_DATA in outputs:
            outputs[DIAGNOSTIC_DATA] = self._empty_lists_to_none_in_dict(
                outputs[DIAGNOSTIC_DATA])
        return outputs

    RasaModel._rasa_predict = _rasa_predict  # type: ignore[method-assign]
