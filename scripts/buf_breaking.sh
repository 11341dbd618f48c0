#!/usr/bin/env bash
# Breaking-change check of proto/ against main (local git, no network).
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=.tools/node_modules/.bin/buf
if git rev-parse --verify -q main >/dev/null && git ls-tree -d main proto >/dev/null 2>&1 \
    && [ -n "$(git ls-tree -r --name-only main proto)" ]; then
  "$BUF" breaking proto --against ".git#branch=main,subdir=proto"
  echo "buf breaking: no breaking change against main"
else
  echo "buf breaking: main has no proto/ yet, nothing to compare"
fi
