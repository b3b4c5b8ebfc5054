# syntax=docker/dockerfile:1
# recore-dist image: the package (from pyproject.toml) with torch 2.13.0, Ray 2.60 and headless
# MuJoCo rendering (software EGL), for the Ray cluster launcher (cluster/aws.yaml) and KubeRay
# (cluster/kuberay/). Build from the repository root:
#
#   docker build -t recore-dist:latest .             # CPU: python:3.11-slim, CPU torch wheel
#   docker build -t recore-dist:latest-cuda --build-arg BASE=nvidia/cuda:12.4.1-base-ubuntu22.04 .
#
# The second is the CUDA image for the GPU learner (torch from PyPI, which carries its own CUDA
# runtime and cuDNN; the base only brings the NVIDIA container settings). The files in cluster/
# name these two tags: push them to a registry your nodes can pull from and put the registry in
# front of the names there (docs/CLUSTER.md).

ARG BASE=python:3.11-slim

# ---- python: the base image plus Python 3.11 (python:3.11-slim has it; Ubuntu 22.04 gets it from apt)
FROM ${BASE} AS python
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1
RUN if ! command -v python3.11 >/dev/null 2>&1; then \
        apt-get update \
        && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3.11 --version

# ---- builder: a venv with torch and the package; build files and wheels stay in this stage
FROM python AS builder
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, pinned like the Makefile. On a CPU base the CPU index, so pip does not fetch a
# multi-GB CUDA build; on a CUDA base (nvidia/cuda images set CUDA_VERSION) the default index.
RUN pip install --upgrade pip \
    && if [ -n "${CUDA_VERSION:-}" ]; then index=""; \
       else index="--index-url https://download.pytorch.org/whl/cpu"; fi \
    && pip install $index "torch==2.13.0" \
    && python -c "import torch, os; cuda = torch.version.cuda; print('torch', torch.__version__, 'cuda', cuda); assert bool(cuda) == bool(os.environ.get('CUDA_VERSION')), 'torch build does not match the base image'"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY recore_dist ./recore_dist
# The package and its dependencies (ray[default,rllib], dm_control, mujoco, ...) from pyproject.toml;
# the installed torch satisfies its torch range, so nothing is downloaded twice.
RUN pip install . \
    && python -c "import torch; assert torch.__version__.split('+')[0] == '2.13.0', torch.__version__"

# ---- runtime: system libraries, the venv, the configs; runs as a non-root user
FROM python AS runtime
# Software OpenGL for MuJoCo (recore_dist/envs/gl.py SYSTEM_PACKAGES: EGL, and OSMesa for
# MUJOCO_GL=osmesa), plus libopengl0: PyOpenGL's EGL platform loads libOpenGL.so.0, which none of
# those pulls in on a slim base. rsync and openssh-client: the cluster launcher copies files into
# the container with rsync, and the head's autoscaler reaches worker nodes over ssh. wget: KubeRay's
# default health probes.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libegl1 libgl1-mesa-dri libegl-mesa0 libgbm1 libosmesa6 libopengl0 \
        rsync openssh-client wget ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# uid 1000 is the ssh user of the usual cloud images (ubuntu), which owns the launcher's file mounts.
RUN useradd --create-home --uid 1000 --shell /bin/bash ray
# The cluster launcher reads HOME from the image config (not from /etc/passwd) to place file mounts.
ENV HOME=/home/ray \
    PATH=/opt/venv/bin:$PATH \
    MUJOCO_GL=egl \
    PYOPENGL_PLATFORM=egl
# Login shells (the launcher runs `bash --login`) reset PATH from /etc/profile on Debian: put the
# venv back there, so `ray`, `recore-dist` and `python` resolve in every shell.
RUN echo 'export PATH="/opt/venv/bin:$PATH"' > /etc/profile.d/recore-dist-venv.sh
COPY --from=builder --chown=ray:ray /opt/venv /opt/venv
WORKDIR /home/ray/recore-dist
COPY --chown=ray:ray configs ./configs
# ~/.ray: where the launcher mounts the cluster's token file (Docker would create it owned by root).
RUN mkdir -p /home/ray/.ray && chown ray:ray /home/ray/recore-dist /home/ray/.ray
USER ray
# Fail the build, not the first job, if Ray or headless rendering does not work in the image.
RUN ray --version \
    && recore-dist --help >/dev/null \
    && python -c "from recore_dist import envs; obs, _ = envs.make('dmc:cartpole-swingup', size=64).reset(seed=0); assert obs['image'].std() > 0, 'blank frame'"
CMD ["bash"]
