# framepred on GPUs:
#   docker build -t framepred .
#   docker run --gpus all -v "$PWD/outputs:/app/outputs" framepred loss=ssim
#   docker run --gpus all -p 6006:6006 -v "$PWD/outputs:/app/outputs" \
#       --entrypoint tensorboard framepred --logdir outputs --bind_all
# The base image brings TensorFlow 2.21 with CUDA and cuDNN; pip keeps it and adds the rest.
FROM tensorflow/tensorflow:2.21.0-gpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /app

# The same non-editable install the test suite checks (tests/test_packaging.py):
# the configs ship inside the package.
COPY pyproject.toml README.md ./
COPY framepred ./framepred
COPY configs ./configs
RUN python -m pip install --no-cache-dir . \
    && useradd --create-home --uid 1000 framepred \
    && mkdir -p /app/outputs \
    && chown -R framepred:framepred /app

USER 1000:1000

# TensorBoard, when started in the container (see above).
EXPOSE 6006

ENTRYPOINT ["python", "-m", "framepred.train"]
