#!/bin/sh
# Query-builder calls outside *-repository.ts, and checkpoint casts (issue 10's before/after figures).
cd "$(dirname "$0")/.." || exit 1
echo "queries outside repositories: $(grep -rnE "selectFrom|updateTable|insertInto|deleteFrom|sql\`" src --include='*.ts' | grep -v -- '-repository.ts:' | wc -l)"
grep -rnE "selectFrom|updateTable|insertInto|deleteFrom|sql\`" src --include='*.ts' | grep -v -- '-repository.ts:' | cut -d: -f1 | sort | uniq -c
echo "checkpoint casts: $(grep -rnE "as Checkpoint" src --include='*.ts' | wc -l)"
