#!/usr/bin/env bash
# Commit the run records finished so far with the leaderboard, LaTeX tables and figures they give,
# while a grid may still be writing more: the report is made from a snapshot of exactly the records
# committed, so CI's check (report of results/runs == results/leaderboard.*) holds for the commit.
# Usage: scripts/commit_records.sh "commit message" [extra `bench report` flags]
set -euo pipefail
# scikit-posthocs draws each critical-difference bar through a set of method names, so the SVG/PNG
# bytes (not the picture) change with Python's string-hash seed; a fixed seed keeps unchanged figures
# out of the diff.
export PYTHONHASHSEED=0
msg=${1:?a commit message}; shift
python scripts/add_method_code.py results/runs > /dev/null  # records of a grid started before method_code existed
snap=$(mktemp -d)
mkdir -p "$snap/runs"
find results/runs -maxdepth 1 -name '*.json' -exec cp {} "$snap/runs/" \;
# the site (results/site/, not committed: CI publishes its own) is made in the same call, with the figures its
# front page shows (the answer's forest plots)
python -m bench report --runs "$snap/runs" --out results --readme README.md --readme results/README.md --html "$@" \
  > /dev/null
if command -v chromium > /dev/null; then  # the README's picture of the site, from the same records
  timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
    --disable-sync --no-first-run --user-data-dir="$snap/profile" --window-size=1280,1500 \
    --screenshot="$PWD/results/site.png" "file://$PWD/results/site/index.html" 2> /dev/null || true
  git add results/site.png
fi
git add -A results/leaderboard.md results/boards results/leaderboard.csv results/summary.md results/latex results/figures README.md results/README.md
(cd "$snap/runs" && ls) | sed 's#^#results/runs/#' | xargs git add
git commit -q -m "$msg"
echo "committed $(ls "$snap/runs" | wc -l) records"
rm -rf "$snap"
