#!/usr/bin/env bash
# The report's study at full length, on one CPU core per job, resumable on any machine:
#
#   scripts/report_study.sh train      # the six runs one after another (each resumes where it stopped)
#   scripts/report_study.sh evaluate   # beside it: every snapshot evaluated as it appears, then the finals
#   scripts/report_study.sh save       # what a later machine needs -> results/report-study/ (commit it)
#   scripts/report_study.sh publish    # save, then results/report-study/README.md and report/ (the HTML report)
#   scripts/report_study.sh restore    # results/report-study/ -> runs/report-study/, to continue there
#
# Training keeps a snapshot (and a grid) at the epochs of snapshot_epochs; `mnistdiff evaluate --snapshots` scores
# those of scored_epochs on 500 samples of the run's own sampler (ancestral T steps for DDPM, Algorithm 2 from the
# fitted start for cold runs) against the 10,000 test digits: every 20 epochs of a DDPM run (a sample costs T net
# calls) and every 4 of a cold one (Inception's features of 500 images cost a few CPU-minutes). The final evaluation
# of a finished run (RUN/eval/final.json) draws 2,000 samples of a DDPM run and 10,000 of a cold one, with the
# real-data rows (classifier IS of the test digits, FID test vs train) and the copy rate (--memorisation); its
# finished sampling batches survive a stop (RUN/eval/final.partial/, saved and restored with the rest).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs/report-study}
SAVED=${SAVED:-results/report-study}
BIN=${BIN:-.venv/bin}
export OMP_NUM_THREADS=1
NAMES="ddpm-default cold-row-random ddpm-testing2 cold-col-random cold-row-random-g4 cold-col-random-g4"

snapshot_epochs() {  # the run's --sample-epochs: the report's grid epochs are among them
  case $1 in
    ddpm-*) echo "1,$(seq -s, 10 10 100)" ;;
    cold-row-random|cold-row-random-g4) echo "1,$(seq -s, 2 2 80)" ;;
    cold-col-*) echo "1,$(seq -s, 2 2 60)" ;;
  esac
}

finished() {  # the run has trained all its epochs
  "$BIN/python" - "$1" <<'PY'
import json, sys
from mnistdiff.training import rundir
cfg = json.load(open(f"{sys.argv[1]}/config.json"))
sys.exit(0 if max((r["epoch"] for r in rundir.read_metrics(sys.argv[1]) if r["type"] == "epoch"), default=0)
         >= cfg["train"]["epochs"] else 1)
PY
}

train() {
  # On resume, the precision this CPU computes natively: a run started in bf16 continues in fp32 on a CPU
  # without AVX512-BF16 or AMX (where bf16 is emulated, ~15x slower); metrics.jsonl records the step.
  precision=$("$BIN/python" -c "from mnistdiff import machine; print(machine.auto_precision('cpu')[0])")
  for name in $NAMES; do
    run=$RUNS/$name
    if [ -f "$run/config.json" ]; then
      finished "$run" || nice -n 10 "$BIN/mnistdiff" train --resume "$run" --precision "$precision" --quiet
    else
      nice -n 10 "$BIN/mnistdiff" train --preset "$name" --run "$run" --threads 1 \
        --sample-epochs "$(snapshot_epochs "$name")" --quiet
    fi
    echo "$(date -u +%FT%TZ) trained $name"
  done
}

scored_epochs() {  # the snapshots scored for the per-epoch curves: 500 DDPM samples cost ~7 CPU-minutes
  case $1 in
    ddpm-*) echo "1,$(seq -s, 20 20 100)" ;;
    cold-row-random|cold-row-random-g4) echo "1,$(seq -s, 4 4 80)" ;;
    cold-col-*) echo "1,$(seq -s, 4 4 60)" ;;
  esac
}

final_n() {  # the final evaluation: every DDPM sample costs T net calls
  case $1 in ddpm-*) echo 2000 ;; *) echo 10000 ;; esac
}

final_batch() {  # sampling batches of the final evaluation: each one finished survives an interruption
  case $1 in ddpm-*) echo 100 ;; *) echo 500 ;; esac  # 100 DDPM samples: ~6 CPU-minutes in fp32 on one AVX2 core
}

evaluate() {  # until every run has trained, every snapshot is scored and every final evaluation is made
  # A final evaluation stopped with the machine resumes at its first missing batch (RUN/eval/final.partial/).
  while :; do
    pending=0
    for name in $NAMES; do
      run=$RUNS/$name
      [ -d "$run/snapshots" ] || { pending=1; continue; }
      nice -n 10 "$BIN/mnistdiff" evaluate "$run" --snapshots --snapshot-epochs "$(scored_epochs "$name")" -n 500 \
        --runtime torch --precision auto --quiet
      if ! finished "$run"; then pending=1; continue; fi
      [ -f "$run/eval/final.json" ] || nice -n 10 "$BIN/mnistdiff" evaluate "$run" -n "$(final_n "$name")" \
        --sample-batch-size "$(final_batch "$name")" --real-rows --memorisation --name final --runtime auto \
        --precision auto --quiet
    done
    [ $pending = 0 ] && break
    sleep 120
  done
}

save() {
  mkdir -p "$SAVED"
  "$BIN/python" - "$RUNS" "$SAVED/machines.jsonl" $NAMES <<'PY'  # which machine got each run how far
import json, os, sys, time
from mnistdiff import machine
from mnistdiff.training import rundir
cpu = machine.cpu_model()
epochs = {n: max((r["epoch"] for r in rundir.read_metrics(f"{sys.argv[1]}/{n}") if r["type"] == "epoch"), default=0)
          for n in sys.argv[3:]}
line = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": f"{cpu}, {os.cpu_count()} cores",
        "precision": machine.auto_precision("cpu")[0], "epochs": {n: e for n, e in epochs.items() if e}}
try:
    rows = [json.loads(r) for r in open(sys.argv[2]).read().splitlines() if r.strip()]
except FileNotFoundError:
    rows = []
if rows and rows[-1]["cpu"] == line["cpu"] and rows[-1]["date"][:10] == line["date"][:10]:
    rows[-1] = line  # the same machine saving again the same day: one line, the latest
else:
    rows.append(line)
open(sys.argv[2], "w").write("".join(json.dumps(r) + "\n" for r in rows))
PY
  for name in $NAMES; do
    run=$RUNS/$name; out=$SAVED/$name
    [ -f "$run/config.json" ] || continue
    mkdir -p "$out/checkpoints"
    cp "$run"/config.json "$run"/metrics.jsonl "$out"/
    [ -f "$run/degradation.json" ] && cp "$run/degradation.json" "$out"/
    for d in samples eval figures; do
      [ -d "$run/$d" ] && { mkdir -p "$out/$d"; find "$run/$d" -maxdepth 1 -type f ! -name '*.npy' ! -name '.*' -exec cp {} "$out/$d"/ \; ; }
    done
    rm -rf "$out"/eval/*.partial  # the batches of an unfinished final evaluation (~80 KB per 100 samples)
    for partial in "$run"/eval/*.partial; do [ -d "$partial" ] && cp -r "$partial" "$out/eval/"; done
    cp "$run/checkpoints/last.safetensors" "$out/checkpoints/"  # 3.6 MB: resumable, and the final weights
    # Snapshots still to be scored travel too, so the per-epoch curve has no hole; scored ones stay behind.
    rm -rf "$out/snapshots"
    for snap in "$run"/snapshots/epoch_*.safetensors; do
      [ -f "$snap" ] || continue
      epoch=$((10#$(basename "$snap" .safetensors | cut -d_ -f2)))
      case ",$(scored_epochs "$name")," in *",$epoch,"*) ;; *) continue ;; esac
      grep -q "\"epoch\": $epoch," "$run/eval/epochs.jsonl" 2>/dev/null && continue
      mkdir -p "$out/snapshots"; cp "$snap" "$out/snapshots/"
    done
  done
}

publish() {  # save, then the generated README, the HTML report and the results index
  save
  "$BIN/python" scripts/study_readme.py "$SAVED"
  done_runs=$(for name in $NAMES; do if [ -f "$SAVED/$name/config.json" ]; then echo "$SAVED/$name"; fi; done)
  # shellcheck disable=SC2086  # one argument per run folder
  "$BIN/mnistdiff" report $done_runs -o "$SAVED/report" --grid-epochs 1,20,40,60,80,100
  "$BIN/python" scripts/results_index.py
}

restore() {
  for name in $NAMES; do
    saved=$SAVED/$name; run=$RUNS/$name
    [ -f "$saved/config.json" ] && [ ! -e "$run" ] || continue
    mkdir -p "$RUNS"; cp -r "$saved" "$run"
  done
}

"${1:?usage: scripts/report_study.sh train|evaluate|save|publish|restore}"
