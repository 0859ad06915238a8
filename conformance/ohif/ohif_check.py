#!/usr/bin/env python3
"""Helper for run_ohif_check.sh.

  ohif_check.py upload STOW_URL
      STOW pydicom's compressed samples; prints "<name> <StudyUID>" lines
  ohif_check.py report JSON ROOT [PACS_LOG_EXCERPT]
      summarises one drive.js result (browser-requests-<tag>.json): DICOMweb request shapes
      and statuses, 4xx/5xx/failed requests (re-fetched once to show the response body),
      console errors, render result.
"""
import collections
import json
import re
import sys
import uuid

import requests

COMPRESSED = ['JPEG2000.dcm', 'MR_small_RLE.dcm', 'SC_rgb_jpeg_dcmtk.dcm']
UID = r'[0-9]+(?:\.[0-9]+)+'


def upload(stow_url):
    import pydicom
    from pydicom.data import get_testdata_file
    for name in COMPRESSED:
        path = get_testdata_file(name, download=False)
        if not path:
            print(f'# {name}: not in this pydicom install', file=sys.stderr)
            continue
        b = 'B' + uuid.uuid4().hex
        head = f'--{b}\r\nContent-Type: application/dicom\r\n\r\n'.encode()
        with open(path, 'rb') as fp:
            body = head + fp.read() + f'\r\n--{b}--\r\n'.encode()
        r = requests.post(stow_url, data=body, headers={
            'Content-Type': f'multipart/related; type="application/dicom"; boundary={b}',
            'Accept': 'application/dicom+json'})
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        ts = ds.file_meta.TransferSyntaxUID
        print(f'# STOW {name} ({ts}) -> {r.status_code}', file=sys.stderr)
        if r.status_code >= 300 and r.status_code != 409:
            print(r.text[:500], file=sys.stderr)
        print(name, ds.StudyInstanceUID)


def norm(url, root):
    p = url[len(root):] if url.startswith(root) else url
    p = re.sub(r'/(studies|series|instances)/' + UID,
               lambda m: f'/{m.group(1)}/{{{m.group(1)}}}', p)
    p = re.sub(r'=' + UID + r'(?=&|$)', '={uid}', p)
    return re.sub(r'/frames/[0-9,]+', '/frames/{n}', p)


def report(fn, root, pacs_log=None):
    d = json.load(open(fn))
    steps = {s['name']: s for s in d['steps']}
    reqs = [r for r in d['requests'] if r['url'].startswith(root)]
    shapes = collections.OrderedDict()
    for r in reqs:
        k = (r['method'], norm(r['url'], root), r.get('accept'))
        outcome = r.get('status') or r.get('failure') or 'not-recorded'
        shapes.setdefault(k, collections.Counter())[outcome] += 1
    print(f'  DICOMweb requests seen by the browser: {len(reqs)} ({len(shapes)} shapes; '
          f'root {root}; not-recorded = drive.js missed the status, not a failure; '
          'preflights are not listed)')
    for (m, p, acc), st in shapes.items():
        print(f'    {sum(st.values()):3d}x {m} {p}\n          Accept: {acc} -> {dict(st)}')
    bad = [r for r in d['requests'] if (r.get('status') or 0) >= 400 or r.get('failure')]
    for r in bad:
        print(f'  BAD: {r["method"]} {r["url"]}\n       Accept: {r.get("accept")} -> '
              f'{r.get("status")} {r.get("failure") or ""}')
        if r['method'] == 'GET' and r['url'].startswith(root):
            try:
                x = requests.get(r['url'], headers={'Accept': r.get('accept') or '*/*'}, timeout=30)
                print(f'       re-fetch: {x.status_code} {x.headers.get("content-type")} '
                      f'{x.text[:300]!r}')
            except Exception as e:  # noqa: BLE001
                print(f'       re-fetch failed: {e}')
    errs = [c for c in d.get('console', []) if c.startswith(('[error]', '[pageerror]'))]
    print(f'  console errors: {len(errs)}')
    for c in errs[:15]:
        print('    ' + c[:300])
    if pacs_log:
        opts = [ln for ln in open(pacs_log) if '"OPTIONS ' in ln]
        print(f'  server log: {len(opts)} OPTIONS preflights, statuses '
              f'{dict(collections.Counter(ln.rsplit(chr(34), 1)[-1].strip() for ln in opts))}')
    rc = steps.get('render-check', {})
    frac = max([c.get('nonBlackFrac') or 0 for c in rc.get('canvases') or []] or [0])
    shown = steps.get("studylist", {}).get("ok")
    external = len(d.get("externalBlocked", []))
    print(f'  study list shown: {shown}; viewport rendered: {rc.get("ok")} '
          f'(non-black fraction {frac:.2f}); external requests: {external}')
    for s in d['steps']:
        for k in ('screenshot', 'viewport'):
            if s.get(k):
                print(f'    {s[k]}')


if __name__ == '__main__':
    if sys.argv[1] == 'upload':
        upload(sys.argv[2])
    else:
        report(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
