#!/usr/bin/env bash
# Every pretext task on the demo phantom, then scratch vs each pretrained U-Net fine-tuned on the same 2
# labelled subjects (configs/demo/*.yaml for each method). Needs the demo data: run `make demo-data` first.
# Usage: bash examples/pretext_comparison.sh [METHOD ...]   (default: all below); results in
# data/demo/comparison/<method>/ and a side-by-side table at the end. CPU, tiny U-Net (channels 8-64),
# 64 px at 2.0 mm; each method's pretext metrics are in its TensorBoard log (runs/pretrain-<method>).
set -euo pipefail
BIN=${BIN:-.venv/bin}
DEMO=${DEMO:-data/demo}
OUT=$DEMO/comparison
PRETRAIN_EPOCHS=${PRETRAIN_EPOCHS:-30}
METHODS=("$@")
[ ${#METHODS[@]} -eq 0 ] && METHODS=(MIM SliceLocation Orientation Multitask Inpainting)

declare -A EXTRA=(
  [MIM]="--model.patch_size 16"
  [SliceLocation]=""
  [Orientation]="--data.long_axis_only true --model.optimizer adam --model.lr 0.001"
  [Multitask]="--data.long_axis_only true --model.optimizer adam --model.lr 0.001"
  [Inpainting]="--model.patch_size 16"
)
declare -A TRANSFER=([MIM]=encoder+decoder [SliceLocation]=encoder [Orientation]=encoder+decoder
                     [Multitask]=encoder+decoder [Inpainting]=encoder+decoder)
COMMON_DATA="--data.data_dir $DEMO/prepared --data.split $DEMO/split.yaml --data.output_size 64 \
  --data.output_spacing 2.0 --model.scale_convention multiplier --data.num_workers 0"

scratch=$OUT/runs/scratch/demo/checkpoints/last.ckpt
[ -f "$scratch" ] || $BIN/sspcmr fit --config configs/demo/scratch.yaml --trainer.logger.init_args.save_dir "$OUT/runs"
[ -f "$OUT/scratch/summary_overall.csv" ] || $BIN/sspcmr test --config configs/demo/scratch.yaml --ckpt_path "$scratch" \
  --trainer.logger.init_args.save_dir "$OUT/runs" --model.init_args.results_dir "$OUT/scratch"
runs=("scratch=$OUT/scratch")
for method in "${METHODS[@]}"; do
  name=$(echo "$method" | tr '[:upper:]' '[:lower:]')
  ckpt=$OUT/runs/pretrain-$name/demo/checkpoints/last.ckpt
  if [ ! -f "$ckpt" ]; then
    # shellcheck disable=SC2086
    $BIN/sspcmr fit --model "$method" --model.channels "[8,16,32,64]" ${EXTRA[$method]} $COMMON_DATA \
      --data.mode pretrain --data.batch_size 32 --data.val_batch_size 64 \
      --trainer.max_epochs "$PRETRAIN_EPOCHS" --trainer.check_val_every_n_epoch 10 --trainer.accelerator cpu \
      --trainer.devices 1 --trainer.precision 32-true --trainer.log_every_n_steps 10 \
      --trainer.logger.init_args.save_dir "$OUT/runs" --trainer.logger.init_args.name "pretrain-$name" \
      --trainer.logger.init_args.version demo
  fi
  tuned=$OUT/runs/finetune-$name/demo/checkpoints/last.ckpt
  if [ ! -f "$tuned" ]; then
    $BIN/sspcmr fit --config configs/demo/finetune-mim.yaml --model.init_args.init_from "$ckpt" \
      --model.init_args.transfer "${TRANSFER[$method]}" \
      --trainer.logger.init_args.save_dir "$OUT/runs" --trainer.logger.init_args.name "finetune-$name"
  fi
  if [ ! -f "$OUT/$name/summary_overall.csv" ]; then
    $BIN/sspcmr test --config configs/demo/finetune-mim.yaml --model.init_args.init_from "$ckpt" \
      --model.init_args.transfer "${TRANSFER[$method]}" --ckpt_path "$tuned" \
      --trainer.logger.init_args.save_dir "$OUT/runs" --trainer.logger.init_args.name "finetune-$name" \
      --model.init_args.results_dir "$OUT/$name"
  fi
  runs+=("$name=$OUT/$name")
done
echo
echo "Test subjects, native resolution: scratch vs fine-tuned from each pretext task (2 labelled subjects)"
$BIN/sspcmr compare "${runs[@]}"
