# bnn2hw + FINN (pinned release) image.
#
# Modelled on FINN v0.10.1's docker/Dockerfile.finn + run-docker.sh + docker/finn_entrypoint.sh, with
# two differences: FINN and its pinned dependency repos are baked into the image (FINN's own flow mounts
# a FINN checkout and pip-installs the deps at every container start), and bnn2hw lives in its own
# Python 3.11 venv because its pins conflict with FINN v0.10.1's (see hw/README.md):
#   bnn2hw: torch==2.13.0, brevitas==0.13.4, qonnx==1.0.0, onnx<1.21 (numpy 2.x)
#   FINN v0.10.1: qonnx@fd61cfe (FINN imports qonnx.transformation.general.ApplyConfig, gone in
#                 qonnx 1.0.0), onnx==1.13.0 (qonnx@fd61cfe imports onnx.mapping, gone in onnx>=1.20),
#                 numpy==1.24.1, protobuf==3.20.3, torch==1.13.1, brevitas@84f4225.
# The two only exchange files (model_finn.onnx + JSON), so they never need to share an interpreter.
#
# Vivado / Vitis HLS are NOT in the image. Mount them from the host at the same path and pass
#   -e FINN_XILINX_PATH=/opt/Xilinx -e FINN_XILINX_VERSION=2022.2 -v /opt/Xilinx:/opt/Xilinx
# hw/run_finn_build.sh sources $FINN_XILINX_PATH/{Vivado,Vitis_HLS}/$FINN_XILINX_VERSION/settings64.sh.
#
# Build:  docker build -t bnn2hw-finn .
# Run:    see hw/README.md (hw/run_finn_build.sh --docker ...)

FROM ubuntu:jammy-20230126

ARG FINN_REPO=https://github.com/Xilinx/finn.git
# FINN v0.10.1 (newest release tag)
ARG FINN_COMMIT=9d299689f2ec0895f208b8bfe3bcdcf6f450181a
ARG VERILATOR_TAG=v4.224

ENV TZ="Europe/Dublin"
RUN ln -snf /usr/share/zoneinfo/$TZ /etc/localtime && echo $TZ > /etc/timezone

# same system packages as FINN's Dockerfile.finn, plus python3.11 (jammy universe) for bnn2hw
RUN apt-get update && apt-get install -y --no-install-recommends \
        build-essential libc6-dev-i386 libglib2.0-0 libsm6 libxext6 libxrender-dev \
        nano zsh rsync git openssh-client sshpass wget sudo unzip zip locales lsb-core ca-certificates \
        python3 python-is-python3 python3-pip python3-setuptools-scm python3-venv \
        python3.11 python3.11-venv python3.11-dev \
        perl make autoconf g++ flex bison ccache libgoogle-perftools-dev numactl perl-doc libfl2 libfl-dev \
        zlib1g zlib1g-dev libtinfo5 \
    && rm -rf /var/lib/apt/lists/*
RUN locale-gen "en_US.UTF-8"
ENV LANG="en_US.UTF-8" LC_ALL="en_US.UTF-8" LANGUAGE="en_US:en"

# Verilator, the version FINN v0.10.1 uses for rtlsim (FIFO sizing, rtlsim performance)
RUN git clone https://github.com/verilator/verilator /tmp/verilator && cd /tmp/verilator && \
    git checkout ${VERILATOR_TAG} && autoconf && ./configure && make -j"$(nproc)" && make install && \
    rm -rf /tmp/verilator

# ---- FINN (system python3.10, exactly FINN's own pins) ----
ENV FINN_ROOT=/opt/finn
RUN git clone ${FINN_REPO} ${FINN_ROOT} && cd ${FINN_ROOT} && git checkout ${FINN_COMMIT} && \
    ./fetch-repos.sh
RUN pip install -r ${FINN_ROOT}/requirements.txt && \
    pip install torch==1.13.1 --extra-index-url https://download.pytorch.org/whl/cpu && \
    pip install deap==1.3.1 mip==1.13.0 networkx==2.8 future-annotations==1.0.0 dependencies==2.0.1 \
        tokenize-rt==4.2.1 tclwrapper==0.0.1 pandas==1.5.3 scikit-learn==1.2.1 tqdm==4.64.1 setuptools==68.2.2
# what finn_entrypoint.sh does at each start, done once here (same pyproject workaround for qonnx)
RUN cd ${FINN_ROOT}/deps && \
    mv qonnx/pyproject.toml qonnx/pyproject.tmp && pip install -e qonnx && mv qonnx/pyproject.tmp qonnx/pyproject.toml && \
    pip install -e finn-experimental && pip install -e brevitas && pip install -e pyverilator && \
    pip install -e ${FINN_ROOT}
ENV FINN_BUILD_DIR=/tmp/finn_build \
    VIVADO_IP_CACHE=/tmp/vivado_ip_cache \
    OHMYXILINX=/opt/finn/deps/oh-my-xilinx \
    FINN_PYTHON=/usr/bin/python3 \
    FINN_XILINX_PATH=/opt/Xilinx \
    FINN_XILINX_VERSION=2022.2
ENV PATH="${PATH}:${OHMYXILINX}"

# ---- bnn2hw (own venv, python3.11, bnn2hw's pins) ----
COPY . /workspace/bnn2hw
RUN python3.11 -m venv /opt/bnn2hw-venv && \
    /opt/bnn2hw-venv/bin/pip install --upgrade pip && \
    /opt/bnn2hw-venv/bin/pip install -e /workspace/bnn2hw && \
    ln -s /opt/bnn2hw-venv/bin/bnn2hw /usr/local/bin/bnn2hw
RUN chmod 755 /workspace/bnn2hw/hw/run_finn_build.sh && \
    ln -s /workspace/bnn2hw/hw/run_finn_build.sh /usr/local/bin/run_finn_build

# sanity: both stacks import, each in its own interpreter
RUN FINN_BUILD_DIR=/tmp python3 -c "import finn.builder.build_dataflow, qonnx, onnx; print('FINN ok, onnx', onnx.__version__)" && \
    /opt/bnn2hw-venv/bin/python -c "import torch, brevitas, qonnx; print('bnn2hw stack ok, torch', torch.__version__)"

WORKDIR /workspace
CMD ["bash"]
