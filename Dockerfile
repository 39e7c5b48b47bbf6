# bnn2hw + FINN image, for FINN dev (default) or the v0.10.1 release:
#
#   docker build -t bnn2hw-finn .                                  # FINN dev 73ba5ed6 (qonnx f5c9819)
#   docker build --build-arg FINN_VERSION=0.10 -t bnn2hw-finn:0.10 .  # FINN v0.10.1 (qonnx fd61cfe)
#
# Export with the same version: `bnn2hw export ... --finn-version dev|0.10` (the graph is the same; the folding
# config and layer report name FINN's layers, which differ: hw/FINN_NOTES.md section 0). run_finn_build.sh checks
# that the build dir was folded for the FINN in the image.
#
# Modelled on FINN's docker/Dockerfile.finn + run-docker.sh + docker/finn_entrypoint.sh of each version, with two
# differences: FINN and its pinned dependency repos are baked into the image (FINN's own flow mounts a FINN checkout
# and pip-installs the deps at every container start), and bnn2hw lives in its own Python 3.11 venv because its
# pins conflict with FINN's (see hw/README.md):
#   bnn2hw: torch==2.13.0, brevitas==0.13.4, qonnx==1.0.0, onnx<1.21 (numpy 2.x)
#   FINN v0.10.1: qonnx@fd61cfe (imports qonnx.transformation.general.ApplyConfig, gone in qonnx 1.0.0),
#                 onnx==1.13.0 (qonnx@fd61cfe imports onnx.mapping, gone in onnx>=1.20), numpy==1.24.1,
#                 torch==1.13.1, brevitas@84f4225, pyverilator + verilator 4.224 for rtlsim.
#   FINN dev:     qonnx@f5c9819, onnx==1.17.0, protobuf==5.29.6, numpy==1.24.1, torch==2.8.0, brevitas@aad4d5a;
#                 rtlsim through finn_xsi (built from Vivado's xsi at run time, hw/run_finn_build.sh), no verilator.
# The two stacks only exchange files (model_finn.onnx + JSON), so they never need to share an interpreter.
#
# Vivado / Vitis HLS are NOT in the image. Mount them from the host at the same path and pass
#   -e FINN_XILINX_PATH=/opt/Xilinx -e FINN_XILINX_VERSION=2022.2 -v /opt/Xilinx:/opt/Xilinx
# hw/run_finn_build.sh sources $FINN_XILINX_PATH/{Vivado,Vitis_HLS}/$FINN_XILINX_VERSION/settings64.sh.
# Run: see hw/README.md (hw/run_finn_build.sh --docker ...).
#
# Not built or run here (no Docker engine where it was written); the pins were read from each FINN version's files.

FROM ubuntu:jammy-20230126

# dev | 0.10
ARG FINN_VERSION=dev
ARG FINN_REPO=https://github.com/Xilinx/finn.git
# FINN dev, newest commit checked (2026-04-17)
ARG FINN_COMMIT_DEV=73ba5ed64e805cb765dda7e57694338d1917848f
# FINN v0.10.1 (newest release tag)
ARG FINN_COMMIT_0_10=9d299689f2ec0895f208b8bfe3bcdcf6f450181a
ARG VERILATOR_TAG=v4.224

ENV TZ="Europe/Dublin"
RUN ln -snf /usr/share/zoneinfo/$TZ /etc/localtime && echo $TZ > /etc/timezone

# the system packages of both versions' Dockerfile.finn, plus python3.11 (jammy universe) for bnn2hw
RUN case "$FINN_VERSION" in 0.10|dev) ;; *) echo "FINN_VERSION must be 0.10 or dev, not $FINN_VERSION" >&2; exit 1;; esac && \
    apt-get update && apt-get install -y --no-install-recommends \
        build-essential libc6-dev-i386 libglib2.0-0 libsm6 libxext6 libxrender-dev libpixman-1-0 \
        nano zsh rsync git openssh-client sshpass wget sudo unzip zip locales lsb-core ca-certificates \
        python3 python-is-python3 python3-pip python3-setuptools-scm python3-venv \
        python3.11 python3.11-venv python3.11-dev \
        perl make autoconf g++ g++-10 flex bison ccache libgoogle-perftools-dev numactl perl-doc libfl2 libfl-dev \
        zlib1g zlib1g-dev libtinfo5 pybind11-dev libfmt-dev libboost-dev libjansson-dev libgetdata-dev \
    && rm -rf /var/lib/apt/lists/*
RUN locale-gen "en_US.UTF-8"
ENV LANG="en_US.UTF-8" LC_ALL="en_US.UTF-8" LANGUAGE="en_US:en"

# Verilator, which FINN v0.10.1 uses for rtlsim (FIFO sizing, rtlsim performance); dev uses Vivado's xsi instead
RUN if [ "$FINN_VERSION" = "0.10" ]; then \
      git clone https://github.com/verilator/verilator /tmp/verilator && cd /tmp/verilator && \
      git checkout ${VERILATOR_TAG} && autoconf && ./configure && make -j"$(nproc)" && make install && \
      rm -rf /tmp/verilator; \
    fi

# ---- FINN (system python3.10, exactly the chosen version's own pins) ----
ENV FINN_ROOT=/opt/finn
RUN if [ "$FINN_VERSION" = "0.10" ]; then C=${FINN_COMMIT_0_10}; else C=${FINN_COMMIT_DEV}; fi && \
    git clone ${FINN_REPO} ${FINN_ROOT} && cd ${FINN_ROOT} && git checkout $C && ./fetch-repos.sh
RUN pip install -r ${FINN_ROOT}/requirements.txt && \
    if [ "$FINN_VERSION" = "0.10" ]; then \
      pip install torch==1.13.1 --extra-index-url https://download.pytorch.org/whl/cpu; \
    else \
      pip install torch==2.8.0 torchvision==0.23.0 --extra-index-url https://download.pytorch.org/whl/cpu; \
    fi && \
    pip install deap==1.3.1 mip==1.13.0 networkx==2.8 future-annotations==1.0.0 dependencies==2.0.1 \
        tokenize-rt==4.2.1 tclwrapper==0.0.1 pandas==1.5.3 scikit-learn==1.2.1 tqdm==4.64.1 setuptools==68.2.2
# what finn_entrypoint.sh does at each start, done once here (same pyproject workaround for qonnx)
RUN cd ${FINN_ROOT}/deps && \
    mv qonnx/pyproject.toml qonnx/pyproject.tmp && pip install -e qonnx && mv qonnx/pyproject.tmp qonnx/pyproject.toml && \
    pip install -e finn-experimental && pip install -e brevitas && \
    if [ "$FINN_VERSION" = "0.10" ]; then pip install -e pyverilator; fi && \
    pip install -e ${FINN_ROOT} && \
    if [ -d ${FINN_ROOT}/finn_xsi ]; then chmod -R a+rwX ${FINN_ROOT}/finn_xsi; fi
ENV FINN_BUILD_DIR=/tmp/finn_build \
    VIVADO_IP_CACHE=/tmp/vivado_ip_cache \
    OHMYXILINX=/opt/finn/deps/oh-my-xilinx \
    FINN_PYTHON=/usr/bin/python3 \
    FINN_XILINX_PATH=/opt/Xilinx \
    FINN_XILINX_VERSION=2022.2 \
    BNN2HW_FINN_VERSION=${FINN_VERSION}
ENV PATH="${PATH}:${OHMYXILINX}"

# ---- bnn2hw (own venv, python3.11, bnn2hw's pins) ----
COPY . /workspace/bnn2hw
RUN python3.11 -m venv /opt/bnn2hw-venv && \
    /opt/bnn2hw-venv/bin/pip install --upgrade pip && \
    /opt/bnn2hw-venv/bin/pip install -e /workspace/bnn2hw && \
    ln -s /opt/bnn2hw-venv/bin/bnn2hw /usr/local/bin/bnn2hw
RUN chmod 755 /workspace/bnn2hw/hw/run_finn_build.sh && \
    ln -s /workspace/bnn2hw/hw/run_finn_build.sh /usr/local/bin/run_finn_build

# sanity: both stacks import, each in its own interpreter, and the FINN is the one asked for
RUN FINN_BUILD_DIR=/tmp python3 -c "import finn.builder.build_dataflow, qonnx, onnx; \
from finn.transformation.fpgadataflow import convert_to_hw_layers as c; \
v = '0.10' if hasattr(c, 'InferStreamingMaxPool') else 'dev'; assert v == '${FINN_VERSION}', v; \
print('FINN', v, 'ok, onnx', onnx.__version__)" && \
    /opt/bnn2hw-venv/bin/python -c "import torch, brevitas, qonnx; print('bnn2hw stack ok, torch', torch.__version__)"

WORKDIR /workspace
CMD ["bash"]
