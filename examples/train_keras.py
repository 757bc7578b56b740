"""
Title: Next-frame forecasting with framepred's pieces in plain Keras
Description: Build a framepred forecaster, train it with its SSIM loss and metrics
through `model.fit`, and forecast. No Hydra, no run folder: the library alone.

    python examples/train_keras.py                         # 64x64, a few minutes on a CPU
    python examples/train_keras.py --size 16 --sequences 8 --epochs 1 --context 2 --future 1

The `framepred.train` command does the same with a config, checkpoints, TensorBoard
and baselines; this is for people who want the pieces in their own training loop.
"""

# ## Setup

import argparse

import keras
import numpy as np

import framepred  # noqa: F401  (registers framepred's Keras objects)
from framepred import losses, metrics, models, scoreboard
from framepred.data import MovingDigits, split_window
from framepred.ssim import ssim

parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
parser.add_argument("--size", type=int, default=64, help="frame height and width, px")
parser.add_argument("--sequences", type=int, default=512, help="training sequences")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--batch-size", type=int, default=16)
parser.add_argument("--context", type=int, default=10, help="frames the model reads")
parser.add_argument("--future", type=int, default=10, help="frames it forecasts")
args = parser.parse_args()
keras.utils.set_random_seed(0)

# ## The data: Moving Digits
#
# framepred's built-in source draws Moving-MNIST-style sequences on the fly (no
# download): bouncing digits, float32 frames in [0, 1]. Each sequence holds the
# context frames (10 by default) and the future frames to forecast (10). A
# validation split uses another seed, so it never repeats a training sequence.

CONTEXT, FUTURE = args.context, args.future
digit_size = (max(4, args.size * 9 // 32), max(5, args.size * 15 // 32))  # 18-30 px at 64


def sequences(count, seed):
    source = MovingDigits(count, CONTEXT + FUTURE, frame_size=(args.size, args.size),
                          digit_size=digit_size, seed=seed)
    return np.stack([source.read(i) for i in range(len(source))])  # [N, T, H, W, 1]


train = sequences(args.sequences, seed=0)
val = sequences(max(4, args.sequences // 8), seed=1)
# [N, T, H, W, 1] -> the context [N, CONTEXT, H, W, 1] and the future [N, FUTURE, H, W, 1]
x_train, y_train = split_window(train, "encoder_forecaster", CONTEXT)
x_val, y_val = split_window(val, "encoder_forecaster", CONTEXT)
print(f"training on {len(x_train)} sequences of {args.size}x{args.size} frames")

# ## The model
#
# An encoder ConvLSTM reads the context; its states start a forecaster that emits
# the future (Shi et al. 2015). Frames go through 4x4 patches first, which makes the
# recurrence 16 times cheaper, and the flow head forecasts by moving the latest
# frame along a per-pixel motion, then correcting it. Nothing looks ahead in time.

model = models.build_encoder_forecaster(
    (args.size, args.size), 1, CONTEXT, FUTURE, filters=(32,), kernel_size=(3,),
    patch_size=4, normalization="none", output_activation="sigmoid", skip=True,
    head="flow", motion_radius=min(5, args.size // 2 - 1), forecaster_input="forecast",
)
# Start as the copy-last-frame forecast, so training learns the motion on top of it.
models.init_head(model, float(x_train.mean()))

# ## Training
#
# `SSIMLoss` is `1 - SSIM` per frame ([B, T]), reduced by Keras as any loss; the
# metrics report SSIM and PSNR beside it. Plain `model.fit` on NumPy arrays.

model.compile(
    optimizer=keras.optimizers.Adam(1e-3, clipnorm=1.0),
    loss=losses.SSIMLoss(),
    metrics=[metrics.SSIM(), metrics.PSNR()],
)
model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=args.epochs,
          batch_size=args.batch_size, verbose=2)

# ## Forecast
#
# `models.forecast` rolls a model out past the context, for any number of frames
# (an encoder-forecaster continues from its own last frames). Each forecast step is
# scored against the truth, beside the copy-last-frame baseline: the forecast that
# repeats the last context frame, which a model must beat to have learned motion.

forecast = models.forecast(model, x_val, steps=FUTURE)  # [N, FUTURE, H, W, 1]
copy_last = scoreboard.copy_last_baseline(x_val, FUTURE)
model_ssim = np.asarray(ssim(y_val, forecast)).mean(axis=0)  # [FUTURE]: mean per lead time
copy_ssim = np.asarray(ssim(y_val, copy_last)).mean(axis=0)
print("step  model SSIM  copy-last SSIM")
for step, (ours, baseline) in enumerate(zip(model_ssim, copy_ssim), start=1):
    print(f"{step:>4}  {ours:10.3f}  {baseline:14.3f}")
print(f"mean  {model_ssim.mean():10.3f}  {copy_ssim.mean():14.3f}")
