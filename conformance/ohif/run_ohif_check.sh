#!/bin/bash
# OHIF v3 (prebuilt @ohif/app 3.13.2) in headless Chromium against a running DICOMweb server.
#   run_ohif_check.sh BASE_URL          e.g. run_ohif_check.sh http://127.0.0.1:8080/dicomweb
# env: SCENARIOS="same-origin cross-origin cross-origin-quoted compressed thumb-rendered thumb-thumbnail thumb-thumbnail-fetch"   OUT=/tmp/ohif-check/<time>
#      OHIF_WORK=/tmp/ohif (installed copy of the recipe)   VIEWER_PORT=28080   PACS_LOG=<server access log>
# Exit 0 only if every scenario showed the study list and a non-black viewport.
set -u
BASE=${1:?usage: $0 http://127.0.0.1:PORT/dicomweb}; BASE=${BASE%/}
HERE=$(cd "$(dirname "$0")" && pwd)
RECIPE=${OHIF_RECIPE:-$(git -C "$HERE" rev-parse --show-toplevel)/../shared/tools/ohif}
WORK=${OHIF_WORK:-/tmp/ohif}
OUT=${OUT:-/tmp/ohif-check/$(date +%Y%m%d-%H%M%S)}
SCENARIOS=${SCENARIOS:-same-origin cross-origin cross-origin-quoted compressed thumb-rendered thumb-thumbnail thumb-thumbnail-fetch}
VPORT=${VIEWER_PORT:-28080}
HOSTPORT=${BASE#*://}; HOSTPORT=${HOSTPORT%%/*}; ROOTPATH=/${BASE#*://*/}
[ "$ROOTPATH" = "/$BASE" ] && ROOTPATH=""
SERVE_PID=""
trap '[ -n "$SERVE_PID" ] && kill $SERVE_PID 2>/dev/null' EXIT

# 1. install (once) into a writable copy of the recipe
if [ ! -f "$WORK/www/index.html" ] || [ ! -d "$WORK/driver/node_modules/playwright-core" ] || [ ! -x "$WORK/venv/bin/python" ]; then
  mkdir -p "$WORK" && cp -rn "$RECIPE"/. "$WORK"/ && chmod -R u+w "$WORK" || exit 2
  if command -v chromium >/dev/null; then SKIP_APT=1 "$WORK/install.sh"; else "$WORK/install.sh"; fi || exit 2
fi
PY=$WORK/venv/bin/python
mkdir -p "$OUT"; echo "output: $OUT"
curl -sf -o /dev/null "${BASE%$ROOTPATH}/healthz" || curl -sf -o /dev/null -H 'Accept: application/dicom+json' "$BASE/studies?limit=1" \
  || { echo "server at $BASE is not answering"; exit 2; }

# 2. data: 24-slice CT + compressed samples via STOW-RS
"$PY" "$WORK/make_ct.py" --out "$OUT/ct" --stow "$BASE/studies" || exit 3
STUDY=$(cat "$OUT/ct/study_uid.txt")
"$PY" "$HERE/ohif_check.py" upload "$BASE/studies" > "$OUT/compressed.txt"

# 3. one viewer run per scenario
RC=0; SUMMARY=""
drive() {  # tag, study, extra driver args
  local lines0=0; [ -n "${PACS_LOG:-}" ] && lines0=$(wc -l < "$PACS_LOG")
  timeout 300 node "$WORK/driver/drive.js" --base "http://127.0.0.1:$VPORT" --out "$OUT" --tag "$1" --study "$2" ${3:-} \
    > "$OUT/drive-$1.log" 2>&1
  local r=$?
  [ $r = 0 ] || RC=1
  SUMMARY+="$1: $([ $r = 0 ] && echo OK || echo FAIL rc=$r)"$'\n'
  echo "=== $1 (rc=$r) ==="
  local plog=""; [ -n "${PACS_LOG:-}" ] && { tail -n +$((lines0 + 1)) "$PACS_LOG" > "$OUT/pacs-$1.log"; plog=$OUT/pacs-$1.log; }
  [ -f "$OUT/browser-requests-$1.json" ] && "$PY" "$HERE/ohif_check.py" report "$OUT/browser-requests-$1.json" "$ROOT" $plog \
    || tail -5 "$OUT/drive-$1.log"
}
for S in $SCENARIOS; do
  unset OMIT_QUOTE THUMBNAIL_RENDERING THUMB_STRATEGY
  case $S in
    same-origin|compressed) ROOT=http://127.0.0.1:$VPORT/dicom-web ;;   # via serve.js proxy
    thumb-rendered)         ROOT=$BASE; export THUMBNAIL_RENDERING=rendered THUMB_STRATEGY=fetch ;;  # …/rendered?viewport=
    thumb-thumbnail)        ROOT=$BASE; export THUMBNAIL_RENDERING=thumbnail ;;                      # …/thumbnail?accept=
    thumb-thumbnail-fetch)  ROOT=$BASE; export THUMBNAIL_RENDERING=thumbnail THUMB_STRATEGY=fetch ;; # …/thumbnail?viewport=
    cross-origin)           ROOT=$BASE ;;                              # viewer :VPORT, DICOMweb on the server (CORS)
    cross-origin-quoted)    ROOT=$BASE; export OMIT_QUOTE=false ;;     # quoted multipart Accept -> preflights
    *) echo "unknown scenario $S"; continue ;;
  esac
  "$WORK/make-config.sh" "$ROOT" "$OUT/app-config.$S.js" >/dev/null
  node "$WORK/serve.js" --dist "$WORK/www" --app-config "$OUT/app-config.$S.js" --port "$VPORT" \
       --upstream "http://$HOSTPORT" --upstream-root "${ROOTPATH:-/}" --log "$OUT/proxy-$S.jsonl" > "$OUT/serve-$S.log" 2>&1 &
  SERVE_PID=$!
  for i in $(seq 1 40); do curl -sf -o /dev/null "http://127.0.0.1:$VPORT/" && break; sleep 0.25; done
  if [ "$S" = compressed ]; then
    while read -r NAME UIDV; do drive "compressed-${NAME%.dcm}" "$UIDV"; done < "$OUT/compressed.txt"
  else
    drive "$S" "$STUDY" --click
    [ "$S" = same-origin ] && [ -s "$OUT/proxy-$S.jsonl" ] && "$PY" "$WORK/summarize.py" "$OUT/proxy-$S.jsonl" > "$OUT/proxy-summary-$S.txt"
  fi
  kill $SERVE_PID; wait $SERVE_PID 2>/dev/null; SERVE_PID=""
done
echo "=== summary ($BASE) ==="; printf '%s' "$SUMMARY"; echo "screenshots and logs: $OUT"
exit $RC
