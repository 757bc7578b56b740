"""framepred.models.ConvLSTM: Keras' ConvLSTM2D, as matrix products where JAX runs on a CPU.

The reference is Keras' own `ConvLSTM2D` under the TensorFlow backend, with the same
weights and initial states, and its gradients through `tf.GradientTape`, computed
here. The JAX side runs in a fresh interpreter with TensorFlow made unimportable,
checks that its program holds no convolution (the formulation XLA's CPU compiler
makes 25x slower inside a loop), and writes its values and gradients to a .npz file.
Skipped unless jax is installed.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import tensorflow as tf

from framepred.models import ConvLSTM
from tests.helpers.cli import run_jax_script
from tests.helpers.run_if import run_if

# (batch, steps, height, width, channels, filters, kernel size, initial state given):
# odd and even kernels (the even one pads one row and column more after), a
# non-square frame and kernel, and the forecaster's case of states handed on.
CASES = [
    (2, 4, 8, 6, 5, 8, [3, 3], False),
    (2, 3, 7, 9, 3, 4, [5, 5], True),
    (1, 5, 6, 6, 2, 6, [4, 4], True),
    (2, 2, 8, 5, 1, 3, [3, 1], False),
]

# For each case: a ConvLSTM with the given weights reads the frames (and states); the
# value is sum(sin(outputs) * w) + sum(final carry ** 2), differentiated with respect
# to the frames, the states and every weight.
JAX_SIDE = """
import json, sys
import jax, keras, numpy as np
from framepred.models import ConvLSTM
assert keras.backend.backend() == "jax", keras.backend.backend()
cases, data, out = json.loads(sys.argv[1]), np.load(sys.argv[2]), sys.argv[3]
results = {}
for i, (b, t, h, w, c, f, size, stated) in enumerate(cases):
    layer = ConvLSTM(f, size, padding="same", return_sequences=True, return_state=True)
    layer.build((b, t, h, w, c))
    layer.set_weights([data[f"weight{i}_{k}"] for k in range(3)])
    frozen = [v.value for v in layer.non_trainable_variables]

    def value(weights, frames, states, weight):
        options = {"initial_state": list(states)} if stated else {}
        (outputs, _, carry), _ = layer.stateless_call(weights, frozen, frames, **options)
        return jax.numpy.sum(jax.numpy.sin(outputs) * weight) + jax.numpy.sum(carry ** 2)

    grad = jax.jit(jax.value_and_grad(value, argnums=(0, 1, 2)))
    args = ([v.value for v in layer.trainable_variables], data[f"frames{i}"],
            (data[f"h{i}"], data[f"c{i}"]), data[f"w{i}"])
    program = str(jax.make_jaxpr(grad)(*args))
    assert "conv_general_dilated" not in program, (i, "a convolution is back")
    total, (d_weights, d_frames, d_states) = grad(*args)
    results[f"value{i}"] = np.asarray(total)
    results[f"d_frames{i}"] = np.asarray(d_frames)
    for k, array in enumerate(d_weights):
        results[f"d_weight{i}_{k}"] = np.asarray(array)
    if stated:
        results[f"d_h{i}"], results[f"d_c{i}"] = (np.asarray(s) for s in d_states)
np.savez(out, **results)
print("ok")
"""


def _inputs(i, case):
    b, t, h, w, c, f, size, _ = case
    rng = np.random.default_rng(i)
    arrays = {
        f"frames{i}": rng.normal(size=(b, t, h, w, c)),
        f"h{i}": rng.normal(size=(b, h, w, f)) * 0.5,
        f"c{i}": rng.normal(size=(b, h, w, f)) * 0.5,
        f"w{i}": rng.uniform(0.5, 2.0, size=(b, t, h, w, f)),
        f"weight{i}_0": rng.normal(size=(*size, c, 4 * f)) * 0.3,
        f"weight{i}_1": rng.normal(size=(*size, f, 4 * f)) * 0.3,
        f"weight{i}_2": rng.normal(size=(4 * f,)) * 0.3,
    }
    return {key: value.astype(np.float32) for key, value in arrays.items()}


def _tf_reference(i, case, data):
    """Keras' ConvLSTM2D under TensorFlow: the value and its gradients."""
    b, t, h, w, c, f, size, stated = case
    layer = keras.layers.ConvLSTM2D(f, size, padding="same", return_sequences=True,
                                    return_state=True)
    layer.build((b, t, h, w, c))
    layer.set_weights([data[f"weight{i}_{k}"] for k in range(3)])
    frames = tf.constant(data[f"frames{i}"])
    states = [tf.constant(data[f"h{i}"]), tf.constant(data[f"c{i}"])]
    with tf.GradientTape() as tape:
        tape.watch([frames, *states])
        outputs, _, carry = layer(frames, initial_state=states if stated else None)
        total = tf.reduce_sum(tf.sin(outputs) * data[f"w{i}"]) + tf.reduce_sum(carry ** 2)
    grads = tape.gradient(total, [frames, *states, *layer.trainable_variables])
    return total.numpy(), [None if g is None else g.numpy() for g in grads]


@run_if(extra="jax")
def test_jax_matmul_recurrence_equals_keras_convlstm_on_tensorflow(tmp_path):
    data = {}
    for i, case in enumerate(CASES):
        data.update(_inputs(i, case))
    np.savez(tmp_path / "inputs.npz", **data)
    result = run_jax_script(JAX_SIDE, json.dumps(CASES), str(tmp_path / "inputs.npz"),
                            str(tmp_path / "jax.npz"))
    assert result.returncode == 0, result.stderr[-4000:]
    ours = np.load(tmp_path / "jax.npz")

    for i, case in enumerate(CASES):
        total, (d_frames, d_h, d_c, *d_weights) = _tf_reference(i, case, data)
        np.testing.assert_allclose(ours[f"value{i}"], total, rtol=1e-5, err_msg=str(case))
        named = [("frames", d_frames)] + [(f"weight{i}_{k}", g) for k, g in enumerate(d_weights)]
        if case[-1]:
            named += [("h", d_h), ("c", d_c)]
        for key, reference in named:
            mine = ours[f"d_{key}{i}" if not key.startswith("weight") else f"d_{key}"]
            scale = float(np.abs(reference).max())
            np.testing.assert_allclose(mine, reference, atol=1e-5 * scale, rtol=0,
                                       err_msg=f"{case} d_{key}")


@run_if(backend="tensorflow")
def test_tensorflow_runs_keras_own_loop_unchanged():
    """On TensorFlow the layer is Keras' ConvLSTM2D, bit for bit, and saves as ours."""
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(2, 3, 8, 8, 4)).astype(np.float32)
    ours = ConvLSTM(6, 3, padding="same", return_sequences=True, name="ours")
    theirs = keras.layers.ConvLSTM2D(6, 3, padding="same", return_sequences=True)
    ours.build(frames.shape)
    theirs.build(frames.shape)
    theirs.set_weights(ours.get_weights())
    np.testing.assert_array_equal(np.asarray(ours(frames)), np.asarray(theirs(frames)))
    config = keras.saving.serialize_keras_object(ours)
    assert config["registered_name"] == "framepred>ConvLSTM"
    again = keras.saving.deserialize_keras_object(config)
    assert isinstance(again, ConvLSTM) and again.filters == 6
