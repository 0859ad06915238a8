#!/usr/bin/env bash
# What the browser test (tests/test_viewer.py) needs beside Debian's chromium and node: the
# prebuilt OHIF v3 viewer as npm ships it, and playwright-core (no browsers of its own), both
# under .cache/viewer of the repository. Run once; a second run finds them and does nothing.
set -euo pipefail
OHIF_APP_VERSION=${OHIF_APP_VERSION:-3.13.2}
PLAYWRIGHT_CORE_VERSION=${PLAYWRIGHT_CORE_VERSION:-1.65.1}
cache="$(cd "$(dirname "$0")/../.." && pwd)/.cache/viewer"
mkdir -p "$cache"
cd "$cache"
if [ ! -f "ohif-$OHIF_APP_VERSION/package/dist/index.html" ]; then
  npm pack --silent "@ohif/app@$OHIF_APP_VERSION" >/dev/null
  mkdir -p "ohif-$OHIF_APP_VERSION"
  tar xzf "ohif-app-$OHIF_APP_VERSION.tgz" -C "ohif-$OHIF_APP_VERSION"
  rm "ohif-app-$OHIF_APP_VERSION.tgz"
fi
ln -sfn "ohif-$OHIF_APP_VERSION/package/dist" ohif
if [ ! -d node_modules/playwright-core ]; then
  [ -f package.json ] || echo '{"private": true}' > package.json
  npm install --silent --no-audit --no-fund "playwright-core@$PLAYWRIGHT_CORE_VERSION"
fi
echo "viewer test: $cache/ohif ($OHIF_APP_VERSION), playwright-core $PLAYWRIGHT_CORE_VERSION"
