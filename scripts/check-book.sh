#!/usr/bin/env bash
# Builds the book and fails when a page includes a file that does not exist (mdBook only warns).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=0
while IFS=: read -r page _ include; do
  target=$(sed -E 's/.*\{\{#include ([^}]*)\}\}.*/\1/' <<< "$include")
  if [ ! -f "$(dirname "$page")/$target" ]; then
    echo "check-book: $page includes $target, which does not exist (scripts/figures.sh makes it)" >&2
    missing=1
  fi
done < <(grep -rn '{{#include' docs/src --include=*.md)
[ "$missing" -eq 0 ] || exit 1
mdbook build docs
