# framepred on GPUs (docs/docker.md):
#   mkdir -p outputs && docker build -t framepred .
#   docker run --gpus all -v "$PWD/outputs:/app/outputs" framepred loss=ssim
#   docker run --gpus all -v "$PWD/outputs:/app/outputs" --entrypoint framepred-evaluate \
#       framepred checkpoint=outputs/framepred/<run>/checkpoints/best.keras
#   docker run -p 6006:6006 -v "$PWD/outputs:/app/outputs" \
#       --entrypoint tensorboard framepred --logdir outputs --bind_all
# The default base brings TensorFlow 2.21 built for its CUDA and cuDNN. Any other base
# needs `python` (>= 3.10) with pip and `useradd`; TensorFlow then comes from PyPI
# (scripts/docker_check.sh builds it that way on Debian, with podman).
ARG BASE_IMAGE=tensorflow/tensorflow:2.21.0-gpu
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    VIRTUAL_ENV=/opt/framepred \
    PATH=/opt/framepred/bin:$PATH

# The same non-editable install the test suite checks (tests/test_packaging.py): the
# configs ship inside the package. The sources go once it is installed, so that nothing
# in /app, the working folder, shadows the installed package on `python`'s path.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY framepred ./framepred
COPY configs ./configs

# A virtual environment that sees the base's packages (--system-site-packages): on the
# GPU image pip finds its TensorFlow already there and keeps it; on a bare Python it
# installs TensorFlow from PyPI. Either way the distribution's own Python is left alone,
# as PEP 668 asks (Debian 12 and Ubuntu 23.04+ refuse a system-wide pip install).
# --without-pip: Debian and Ubuntu ship ensurepip apart (python3-venv), and the base's
# pip, seen through the system site-packages, installs into the environment it runs in.
RUN python -m venv --system-site-packages --without-pip /opt/framepred \
    && /opt/framepred/bin/python -m pip install --no-cache-dir . \
    && rm -rf /src \
    && useradd --create-home --uid 1000 framepred \
    && mkdir -p /app/outputs \
    && chown -R framepred:framepred /app

WORKDIR /app
USER 1000:1000

# TensorBoard, when started in the container (see above).
EXPOSE 6006

ENTRYPOINT ["framepred-train"]
