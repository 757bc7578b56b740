"""framepred.ssim under KERAS_BACKEND=jax gives TensorFlow's values and gradients.

Under JAX, `framepred.ssim` filters with shifted slices instead of TF's depthwise
layout (see its module docstring). The references are `tf.image.ssim` and
`tf.image.ssim_multiscale` with `tf.GradientTape`, computed here; the JAX side
runs in a fresh interpreter with TensorFlow made unimportable and writes its
values and gradients to a .npz file. Skipped unless jax is installed.
"""

from __future__ import annotations

import json

import numpy as np
import tensorflow as tf

from tests.helpers.cli import run_jax_script
from tests.helpers.run_if import run_if

pytestmark = run_if(extra="jax")

# (function, frame shape, options, chunked): gray and 3-channel, odd sizes, an image
# batch [B, H, W, C] and a single frame [H, W, C], max_val 255, MS-SSIM with 3 and 2
# scales, a filter of 7 (3 row blocks in the H pass instead of 2). `chunked` forces
# one frame per chunk, the path that large batches take on a CPU
# (`framepred.ssim._chunk_bounds`).
CASES = [
    ("ssim", (2, 3, 32, 32, 1), {}, False),
    ("ssim", (2, 2, 23, 37, 3), {"max_val": 255.0}, False),
    ("ssim", (2, 2, 23, 37, 3), {"max_val": 255.0}, True),
    ("ssim", (16, 16, 1), {}, False),
    ("ms_ssim", (2, 2, 45, 43, 1), {"power_factors": [0.3, 0.3, 0.4]}, False),
    ("ms_ssim", (2, 2, 45, 43, 1), {"power_factors": [0.3, 0.3, 0.4]}, True),
    ("ms_ssim", (2, 25, 27, 3), {"power_factors": [0.5, 0.5], "filter_size": 7}, False),
]

# For each case: the jitted value and its gradients (y_true, y_pred) for the weights
# `w`, that is of sum(value * w), through jax.vjp; and checks that no convolution is
# left in the program (the layout that made it 25x slower than TF) and that it runs
# in chunks where asked (only `_after`, which orders the chunks, tests is_finite).
JAX_SIDE = """
import json, sys
import jax, keras, numpy as np
from framepred import ssim as module
assert keras.backend.backend() == "jax", keras.backend.backend()
cases, data, out = json.loads(sys.argv[1]), np.load(sys.argv[2]), sys.argv[3]
functions = {"ssim": module.ssim, "ms_ssim": module.ms_ssim}
defaults = module._CHUNK_ABOVE, module._CHUNK_ELEMENTS
results = {}
for i, (name, _, options, chunked) in enumerate(cases):
    module._CHUNK_ABOVE, module._CHUNK_ELEMENTS = (0, 1) if chunked else defaults
    def similarity(y_true, y_pred, name=name, options=options):
        return functions[name](y_true, y_pred, **options)

    @jax.jit
    def value_and_grads(y_true, y_pred, weights):
        value, vjp = jax.vjp(similarity, y_true, y_pred)
        return (value, *vjp(weights))

    args = (data[f"true{i}"], data[f"pred{i}"], data[f"weights{i}"])
    program = str(jax.make_jaxpr(value_and_grads)(*args))
    assert "conv_general_dilated" not in program, (name, "a convolution is back")
    assert ("is_finite" in program) == chunked, (name, chunked)
    for key, array in zip(("value", "grad_true", "grad_pred"), value_and_grads(*args)):
        results[f"{key}{i}"] = np.asarray(array)
np.savez(out, **results)
print("ok")
"""


def frames(shape, max_val, seed):
    rng = np.random.default_rng(seed)
    y_true = rng.uniform(0.0, max_val, size=shape).astype(np.float32)
    noise = rng.normal(0.0, 0.1 * max_val, size=shape)
    y_pred = np.clip(y_true + noise, 0.0, max_val).astype(np.float32)
    return y_true, y_pred


def tf_reference(name, y_true, y_pred, weights, options):
    """TF's value and gradients of sum(value * weights) with respect to y_true, y_pred."""
    options = dict(options)
    max_val = options.pop("max_val", 1.0)
    y_true, y_pred = tf.constant(y_true), tf.constant(y_pred)
    with tf.GradientTape() as tape:
        tape.watch([y_true, y_pred])
        if name == "ssim":
            value = tf.image.ssim(y_true, y_pred, max_val, **options)
        else:
            value = tf.image.ssim_multiscale(y_true, y_pred, max_val, **options)
        total = tf.reduce_sum(value * weights)
    grad_true, grad_pred = tape.gradient(total, [y_true, y_pred])
    return value.numpy(), grad_true.numpy(), grad_pred.numpy()


def test_jax_values_and_gradients_equal_tensorflow(tmp_path):
    data, references = {}, []
    for i, (name, shape, options, _) in enumerate(CASES):
        y_true, y_pred = frames(shape, options.get("max_val", 1.0), seed=i)
        # One weight per frame, as a loss with sample weights gives.
        weights = np.random.default_rng(100 + i).uniform(0.5, 2.0, size=shape[:-3])
        weights = weights.astype(np.float32)
        data.update({f"true{i}": y_true, f"pred{i}": y_pred, f"weights{i}": weights})
        references.append(tf_reference(name, y_true, y_pred, weights, options))
    np.savez(tmp_path / "inputs.npz", **data)

    result = run_jax_script(JAX_SIDE, json.dumps(CASES), str(tmp_path / "inputs.npz"),
                            str(tmp_path / "jax.npz"))
    assert result.returncode == 0, result.stderr[-4000:]
    ours = np.load(tmp_path / "jax.npz")

    for i, ((name, shape, options, chunked), reference) in enumerate(zip(CASES, references)):
        case = f"{name} {shape} {options}" + (" in chunks" if chunked else "")
        value, grad_true, grad_pred = reference
        max_val = options.get("max_val", 1.0)
        assert ours[f"value{i}"].shape == value.shape == shape[:-3], case
        assert ours[f"value{i}"].dtype == np.float32, case
        np.testing.assert_allclose(ours[f"value{i}"], value, atol=1e-5, rtol=0, err_msg=case)
        # Gradients scale with 1 / max_val.
        for key, grad in (("grad_true", grad_true), ("grad_pred", grad_pred)):
            assert np.all(np.isfinite(grad)), (case, key, "TF's gradient is not finite here")
            np.testing.assert_allclose(ours[f"{key}{i}"], grad, atol=1e-5 / max_val, rtol=0,
                                       err_msg=f"{case} {key}")
