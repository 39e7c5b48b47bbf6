#!/usr/bin/env bash
# Run FINN's build_dataflow on a bnn2hw build directory.
#
#   run_finn_build.sh BUILD_DIR [--estimate-only] [--steps-until STEP] [--output-dir DIR]
#   run_finn_build.sh --docker IMAGE BUILD_DIR [...]      # wrap the same call in `docker run`
#
# BUILD_DIR is what `bnn2hw export model.pt --target pynq-z2 -o BUILD_DIR` writes:
#   model_finn.onnx, dataflow_build_config.json, folding_config.json
# FINN's own CLI (`build_dataflow DIR`) insists on DIR/model.onnx; this script instead calls
# finn.builder.build_dataflow.build_dataflow_cfg(model_finn.onnx, cfg) with the same chdir
# semantics (relative paths in the JSON resolve inside BUILD_DIR).
#
# Environment (same names as FINN's run-docker.sh):
#   FINN_XILINX_PATH     e.g. /opt/Xilinx (host path, mounted at the same path in the container)
#   FINN_XILINX_VERSION  e.g. 2022.2
#   FINN_ROOT            FINN checkout (image: /opt/finn)
#   FINN_BUILD_DIR       scratch dir for FINN (default BUILD_DIR/finn_tmp)
#   FINN_PYTHON          interpreter that can `import finn` (default python3)
#   NUM_DEFAULT_WORKERS  parallel HLS/synth jobs
set -euo pipefail

DOCKER_IMAGE=""
if [ "${1:-}" = "--docker" ]; then
  DOCKER_IMAGE="$2"; shift 2
fi
if [ $# -lt 1 ]; then
  sed -n '2,20p' "$0"; exit 2
fi
BUILD_DIR="$(readlink -f "$1")"; shift

if [ -n "$DOCKER_IMAGE" ]; then
  : "${FINN_XILINX_PATH:?set FINN_XILINX_PATH (e.g. /opt/Xilinx) on the host}"
  : "${FINN_XILINX_VERSION:?set FINN_XILINX_VERSION (e.g. 2022.2) on the host}"
  # --init: Vivado synthesis hangs without it in Docker (FINN run-docker.sh);
  # LD_PRELOAD libudev: FlexLM licensing workaround (FINN run-docker.sh)
  exec docker run --rm --init -t \
    -v "$BUILD_DIR:$BUILD_DIR" \
    -v "$FINN_XILINX_PATH:$FINN_XILINX_PATH:ro" \
    -e FINN_XILINX_PATH -e FINN_XILINX_VERSION \
    -e XILINXD_LICENSE_FILE -e NUM_DEFAULT_WORKERS \
    -e LD_PRELOAD=/lib/x86_64-linux-gnu/libudev.so.1 \
    --user "$(id -u):$(id -g)" -e HOME=/tmp/home \
    "$DOCKER_IMAGE" /workspace/bnn2hw/hw/run_finn_build.sh "$BUILD_DIR" "$@"
fi

# ---- inside the FINN environment ----
for f in model_finn.onnx dataflow_build_config.json; do
  [ -f "$BUILD_DIR/$f" ] || { echo "ERROR: $BUILD_DIR/$f not found" >&2; exit 2; }
done

if [ -n "${FINN_XILINX_PATH:-}" ] && [ -n "${FINN_XILINX_VERSION:-}" ]; then
  VIVADO_PATH="$FINN_XILINX_PATH/Vivado/$FINN_XILINX_VERSION"
  HLS_PATH="$FINN_XILINX_PATH/Vitis_HLS/$FINN_XILINX_VERSION"
  VITIS_PATH="$FINN_XILINX_PATH/Vitis/$FINN_XILINX_VERSION"
  set +u
  if [ -f "$VIVADO_PATH/settings64.sh" ]; then
    export XILINX_VIVADO="$VIVADO_PATH" VIVADO_PATH; source "$VIVADO_PATH/settings64.sh"
    echo "Found Vivado at $VIVADO_PATH"
  else
    echo "WARNING: no $VIVADO_PATH/settings64.sh: only estimate steps can run" >&2
  fi
  if [ -f "$HLS_PATH/settings64.sh" ]; then
    export HLS_PATH; source "$HLS_PATH/settings64.sh"; echo "Found Vitis HLS at $HLS_PATH"
  fi
  [ -d "$VITIS_PATH" ] && export VITIS_PATH
  set -u
else
  echo "WARNING: FINN_XILINX_PATH/FINN_XILINX_VERSION not set: only estimate steps can run" >&2
fi

export FINN_BUILD_DIR="${FINN_BUILD_DIR:-$BUILD_DIR/finn_tmp}"
export VIVADO_IP_CACHE="${VIVADO_IP_CACHE:-$FINN_BUILD_DIR/vivado_ip_cache}"
mkdir -p "$FINN_BUILD_DIR" "$VIVADO_IP_CACHE"
: "${FINN_ROOT:?set FINN_ROOT to the FINN checkout (in the image: /opt/finn)}"
export FINN_ROOT

# FINN dev simulates RTL through finn_xsi, built from Vivado's xsi (docker/finn_entrypoint.sh of FINN dev)
if [ -d "$FINN_ROOT/finn_xsi" ] && [ -n "${XILINX_VIVADO:-}" ] && [ ! -f "$FINN_ROOT/finn_xsi/xsi.so" ]; then
  "${FINN_PYTHON:-python3}" -m finn.xsi.setup --quiet || echo "WARNING: building finn_xsi failed: no rtlsim" >&2
fi

BNN2HW_HW_DIR="$(dirname "$(readlink -f "$0")")" "${FINN_PYTHON:-python3}" - "$BUILD_DIR" "$@" <<'PY'
import argparse, json, os, sys

ap = argparse.ArgumentParser(prog="run_finn_build.sh")
ap.add_argument("build_dir")
ap.add_argument("--estimate-only", action="store_true",
                help="run FINN's estimate_only_dataflow_steps (no HLS/Vivado needed)")
ap.add_argument("--steps-until", default=None, help="stop after this FINN step name")
ap.add_argument("--output-dir", default=None, help="override output_dir from the JSON")
args = ap.parse_args()

# pyverilator (v0.10.x rtlsim) and torchvision (FINN's test helpers) are imported by FINN at load time;
# where they are missing (a venv, not FINN's image) inert stubs let the estimate steps run
sys.path.insert(0, os.environ["BNN2HW_HW_DIR"])
from finn_local_check import _stub_missing_modules
_stub_missing_modules()
sys.path.pop(0)
import finn.builder.build_dataflow_config as bc
from finn.builder.build_dataflow import build_dataflow_cfg

os.chdir(args.build_dir)  # same as finn.builder.build_dataflow.build_dataflow_directory
# the folding config and layer report name FINN's layers, which differ between v0.10.x and dev
from finn.transformation.fpgadataflow import convert_to_hw_layers as _c
here = "0.10" if hasattr(_c, "InferStreamingMaxPool") else "dev"
if os.path.isfile("bnn2hw_export.json"):
    with open("bnn2hw_export.json") as f:
        folded_for = json.load(f).get("finn_version", "0.10")
    if folded_for != here:
        sys.exit("ERROR: this build dir was exported for FINN %s but the FINN here is %s; re-export with "
                 "`bnn2hw export ... --finn-version %s`" % (folded_for, here, here))
with open("dataflow_build_config.json") as f:
    raw = json.load(f)
if args.output_dir:
    raw["output_dir"] = args.output_dir
raw.setdefault("output_dir", "finn_output")
if "folding_config_file" not in raw and os.path.isfile("folding_config.json"):
    raw["folding_config_file"] = "folding_config.json"
if raw.get("minimize_bit_width", True):
    print("WARNING: minimize_bit_width is on; FINN v0.10.1 then clips xnor-popcount thresholds "
          "to the +-1 accumulator range, and FINN dev derives wrong XNOR accumulator widths "
          "(hw/FINN_NOTES.md sections 0 and 1)", file=sys.stderr)
if raw.get("folding_config_file"):
    with open(raw["folding_config_file"]) as f:
        fold = json.load(f)
    if "Defaults" not in fold:  # qonnx ApplyConfig reads model_config["Defaults"] unconditionally
        sys.exit("ERROR: %s has no \"Defaults\" key (required by ApplyConfig)" % raw["folding_config_file"])
cfg = bc.DataflowBuildConfig.from_dict(raw)
if args.estimate_only:
    cfg.steps = list(bc.estimate_only_dataflow_steps)
    cfg.generate_outputs = [bc.DataflowOutputType.ESTIMATE_REPORTS]
    cfg.verify_steps = [v for v in (cfg.verify_steps or []) if v in (
        bc.VerificationStepType.QONNX_TO_FINN_PYTHON, bc.VerificationStepType.TIDY_UP_PYTHON,
        bc.VerificationStepType.STREAMLINED_PYTHON)]
if args.steps_until:
    cfg.stop_step = args.steps_until
print("FINN build: model=model_finn.onnx output_dir=%s board=%s part=%s clk=%sns outputs=%s"
      % (cfg.output_dir, cfg.board, cfg._resolve_fpga_part() if (cfg.board or cfg.fpga_part) else None,
         cfg.synth_clk_period_ns, [o.value for o in cfg.generate_outputs]))
sys.exit(build_dataflow_cfg(os.path.abspath("model_finn.onnx"), cfg))
PY
