#!/usr/bin/env bash
# asyncws side by side with its peers, in the shared peerbench harness (../shared/peerbench).
#
#   bash benchmarks/peerbench.sh                 # raw, seed, asyncws_compat, asyncws_declarative
#   bash benchmarks/peerbench.sh --quick         # smoke run (about 1 minute): lost/dup must be 0/0
#   SYSTEMS=raw,asyncws_declarative bash benchmarks/peerbench.sh -n 100
#
# Installs this checkout (editable) into peerbench's venv, then runs run.py with this project's
# adapter folder (benchmarks/peerbench/) added, so asyncws_declarative is found beside the
# shared adapters. Extra arguments go to run.py; --rate 100 (an under-capacity phase 2, for
# the latency figure) is the default here. Results and logs land in ../shared/peerbench/results/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
PEERBENCH="${PEERBENCH:-$ROOT/../shared/peerbench}"
if [ ! -f "$PEERBENCH/run.py" ]; then
    echo "peerbench not found at $PEERBENCH (set PEERBENCH=/path/to/peerbench)" >&2
    exit 2
fi
"$PEERBENCH/setup.sh" "$ROOT"
SYSTEMS="${SYSTEMS:-raw,seed,asyncws_compat,asyncws_declarative}"
case " $* " in
    *" --rate "*) RATE=() ;;
    *) RATE=(--rate 100) ;;
esac
PEERBENCH_ADAPTERS="$ROOT/benchmarks/peerbench" exec "$PEERBENCH/.venv/bin/python" \
    "$PEERBENCH/run.py" --systems "$SYSTEMS" "${RATE[@]}" "$@"
