"""The ConvLSTM layer: Keras' ConvLSTM2D, as matrix products where XLA computes on a CPU."""

from __future__ import annotations

import keras
from keras import layers, ops

from framepred import xla


def _patches(frames, kernel_size):
    """[B, H, W, C] -> [B, H, W, kh*kw*C]: each pixel's "same"-padded neighbourhood,
    row by row, as a stride-1 convolution with `kernel_size` reads it (im2col)."""
    kh, kw = kernel_size
    _, height, width, _ = frames.shape
    # "same" padding: XLA's and TensorFlow's split, the extra row or column after.
    padded = ops.pad(frames, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))
    return ops.concatenate(
        [padded[:, i : i + height, j : j + width] for i in range(kh) for j in range(kw)], axis=-1)


def _unpatch(grads, kernel_size, height, width):
    """The gradient of `_patches`: [B, h, w, kh*kw*C] -> [B, h, w, C] (col2im)."""
    kh, kw = kernel_size
    parts = ops.split(grads, kh * kw, axis=-1)
    padded = sum(
        ops.pad(parts[i * kw + j], ((0, 0), (i, kh - 1 - i), (j, kw - 1 - j), (0, 0)))
        for i in range(kh) for j in range(kw))
    top, left = (kh - 1) // 2, (kw - 1) // 2
    return padded[:, top : top + height, left : left + width]


def _conv_as_matmul(frames, kernel, kernel_size):
    """A stride-1 "same" convolution of frames [B, h, w, C] with kernel
    [kh*kw*C, N], as one matrix product over their neighbourhoods.

    The gradient rebuilds the neighbourhoods from `frames` instead of keeping them:
    under a scan, autodiff would store every step's [B*h*w, kh*kw*C] block, kh*kw
    times the frames, and filling and reading those stacks took a third of a
    training step on the 2-core CPU (docs/performance.md).
    """
    _, height, width, _ = frames.shape

    @ops.custom_gradient
    def product(frames, kernel):
        def grad(*args, upstream=None):
            upstream = args[0] if upstream is None else upstream  # [B, h, w, N]
            # Contractions over the rows' axis, not transposes: no copies.
            rows = ops.reshape(_patches(frames, kernel_size), (-1, kernel.shape[0]))
            d_kernel = ops.einsum("nk,nf->kf", rows, ops.reshape(upstream, (-1, kernel.shape[1])))
            d_frames = _unpatch(ops.einsum("bhwf,kf->bhwk", upstream, kernel), kernel_size,
                                height, width)
            return d_frames, d_kernel

        return ops.matmul(_patches(frames, kernel_size), kernel), grad

    return product(frames, kernel)


@keras.saving.register_keras_serializable(package="framepred")
class ConvLSTM(layers.ConvLSTM2D):
    """Keras' ConvLSTM2D, with the same weights, values and gradients, that runs its
    recurrence as matrix products where XLA computes on a CPU.

    Keras' cell makes eight convolutions a step, and under JAX the recurrence is a
    `lax.scan`. On a CPU, XLA runs a convolution inside a loop far slower than outside
    one (jax-ml/jax#12868), its kernel gradient worst: one layer's training step took
    2.3 s where TensorFlow takes 0.1 s (scripts/bench_convlstm.py, docs/performance.md).
    Here each step reads the "same"-padded neighbourhoods of the input and the state
    (im2col) and multiplies them once by both kernels stacked: one matrix product a
    step, whose gradients are matrix products too. Unrolling the loop instead is also
    fast for one layer but grows worse than linearly with depth (2.3 s a step for
    three layers, against 0.5 s on TensorFlow). Elsewhere Keras' own loop runs: on
    TensorFlow; under JAX on GPUs and TPUs, where that CPU issue is not reported and
    this formulation is not measured; and for options framepred does not set
    (strides, dilation, dropout, masks, reverse order).
    """

    def _matmul_recurrence(self, mask, training):
        cell = self.cell
        plain = (cell.data_format == "channels_last" and cell.padding == "same"
                 and set(cell.strides) == {1} and set(cell.dilation_rate) == {1}
                 and not (training and (cell.dropout or cell.recurrent_dropout)))
        return (plain and mask is None and not self.go_backwards and cell.use_bias
                and xla.jax_on_cpu())

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not self._matmul_recurrence(mask, training):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        cell, dtype = self.cell, self.compute_dtype
        # [kh, kw, C + F, 4F] -> [kh*kw*(C + F), 4F], rows in `_patches`' order.
        kernel = ops.concatenate([ops.cast(cell.kernel, dtype),
                                  ops.cast(cell.recurrent_kernel, dtype)], axis=2)
        kernel = ops.reshape(kernel, (-1, kernel.shape[-1]))
        bias = ops.cast(cell.bias, dtype)

        def step(states, frame):
            hidden, carry = states
            joined = ops.concatenate([ops.cast(frame, dtype), hidden], axis=-1)
            gates = _conv_as_matmul(joined, kernel, cell.kernel_size) + bias
            # Keras' gate order and arithmetic (ConvLSTMCell.call).
            z_i, z_f, z_c, z_o = ops.split(gates, 4, axis=-1)
            carry = (cell.recurrent_activation(z_f) * carry
                     + cell.recurrent_activation(z_i) * cell.activation(z_c))
            hidden = cell.recurrent_activation(z_o) * cell.activation(carry)
            return (hidden, carry), hidden

        time_major = ops.moveaxis(sequences, 1, 0)  # [T, B, h, w, C]
        start = tuple(ops.cast(state, dtype) for state in initial_state)
        (hidden, carry), outputs = ops.scan(step, start, time_major)
        return hidden, ops.moveaxis(outputs, 0, 1), [hidden, carry]

