#!/usr/bin/env bash
# Multi-node launcher with the original recipe's interface. Run the same line on every node:
#   MASTER_ADDR=10.0.0.1 NNODES=2 NODE_RANK=0 ./accelerate_configs/launch_distributed.sh [train.py args]
#   MASTER_ADDR=10.0.0.1 NNODES=2 NODE_RANK=1 ./accelerate_configs/launch_distributed.sh [train.py args]
# Environment (all optional except on multi-node runs):
#   MASTER_ADDR    address of node 0               (default 127.0.0.1)
#   MASTER_PORT    rendezvous port                 (default 29500)
#   NNODES         number of nodes                 (default 1)
#   NODE_RANK      this node's rank, 0..NNODES-1   (default 0)
#   GPUS_PER_NODE  processes per node              (default: GPUs found by nvidia-smi, else 1)
#   CONFIG_FILE    accelerate config               (default: multinode.yaml next to this script;
#                                                    use fsdp.yaml for the full-size model)
#   MIXED_PRECISION  bf16 | fp16 | no              (default bf16 on GPU, no on CPU)
#   PYTHON         interpreter that has accelerate (default python)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"

detect_gpus() {
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        nvidia-smi -L | grep -c '^GPU'
    else
        echo 0
    fi
}

MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
MASTER_PORT="${MASTER_PORT:-29500}"
NNODES="${NNODES:-1}"
NODE_RANK="${NODE_RANK:-0}"
CONFIG_FILE="${CONFIG_FILE:-$here/multinode.yaml}"
gpus="$(detect_gpus)"
GPUS_PER_NODE="${GPUS_PER_NODE:-$((gpus > 0 ? gpus : 1))}"
# bf16 autocast on CPU is slow and changes numerics; keep full precision where there is no GPU.
MIXED_PRECISION="${MIXED_PRECISION:-$([ "$gpus" -gt 0 ] && echo bf16 || echo no)}"

if [ "$NODE_RANK" -ge "$NNODES" ]; then
    echo "launch_distributed.sh: NODE_RANK=$NODE_RANK must be below NNODES=$NNODES" >&2
    exit 2
fi

echo "launch_distributed.sh: node $NODE_RANK/$NNODES, $GPUS_PER_NODE processes per node," \
     "master $MASTER_ADDR:$MASTER_PORT, config $(basename "$CONFIG_FILE")" >&2

exec "${PYTHON:-python}" -m accelerate.commands.launch \
    --config_file "$CONFIG_FILE" \
    --num_machines "$NNODES" \
    --num_processes "$((NNODES * GPUS_PER_NODE))" \
    --machine_rank "$NODE_RANK" \
    --main_process_ip "$MASTER_ADDR" \
    --main_process_port "$MASTER_PORT" \
    --mixed_precision "$MIXED_PRECISION" \
    "$repo/train.py" "$@"
