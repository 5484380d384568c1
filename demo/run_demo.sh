#!/usr/bin/env bash
# The blast-radius demo: six production failure modes, without and with Invoke, in one command.
# FLAKY_FAIL_FIRST_N (default 2) sets how many calls the flaky MCP tool stalls on first.
set -euo pipefail
cd "$(dirname "$0")/.."
exec npx tsx demo/run-demo.ts "$@"
