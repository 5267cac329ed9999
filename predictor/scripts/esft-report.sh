#!/usr/bin/env bash
# Regenerates reports/predictor from the real ESFT routing traces (../shared/traces/esft): imports the
# three tasks, trains every predictor the report shows, then writes the report. Runs that already have a
# predictor.json are kept, so an interrupted run resumes. Takes about an hour on 2 cores.
#   ESFT=dir of the ESFT tasks   WORK=scratch dir (traces, trained predictors)   EPOCHS=max epochs
#   CLI="node bin/moe-offload.js" (how to run the CLI; point it at a copy of dist/ to keep a long run
#   independent of rebuilds)
set -euo pipefail
cd "$(dirname "$0")/../.."
ESFT=${ESFT:-../shared/traces/esft}
WORK=${WORK:-/tmp/moe-offload-predictor}
EPOCHS=${EPOCHS:-6}
CLI=${CLI:-node bin/moe-offload.js}
T=$WORK/traces
mkdir -p "$T" "$WORK/runs"
for task in intent summary translation; do
  [ -f "$T/$task.arrow" ] || $CLI traces import esft "$ESFT/$task" --out "$T/$task.arrow" --quiet
done

train() {
  local name=$1
  shift
  if [ -f "$WORK/runs/$name/predictor.json" ]; then echo "keep $name"; return; fi
  echo "train $name"
  $CLI train-predictor "$@" --out "$WORK/runs/$name" --epochs "$EPOCHS" > "$WORK/runs/$name.txt" 2> "$WORK/runs/$name.log"
}

ALL=$T/intent.arrow,$T/summary.arrow,$T/translation.arrow
# The must-show figures first (k = 1, held out by task and by sequence), then recall against k, then the
# other two tasks held out in turn.
train k1-task-translation --traces "$T/intent.arrow,$T/summary.arrow" --test-traces "$T/translation.arrow" --k 1
train k1-sequence --traces "$ALL" --k 1
train k2-sequence --traces "$ALL" --k 2
train k3-sequence --traces "$ALL" --k 3
train k1-task-intent --traces "$T/summary.arrow,$T/translation.arrow" --test-traces "$T/intent.arrow" --k 1
train k1-task-summary --traces "$T/intent.arrow,$T/translation.arrow" --test-traces "$T/summary.arrow" --k 1
train k2-task-translation --traces "$T/intent.arrow,$T/summary.arrow" --test-traces "$T/translation.arrow" --k 2
train k3-task-translation --traces "$T/intent.arrow,$T/summary.arrow" --test-traces "$T/translation.arrow" --k 3
$CLI train-predictor --report reports/predictor --runs "$WORK/runs"
