#!/usr/bin/env node
// Browser half of auth_check.py: OHIF v3's classic DICOMweb data source in headless Chromium,
// talking cross-origin and directly (no proxy, no request interception) to our server, which has
// authentication on.
//
//   node auth_drive.js --viewer http://127.0.0.1:VPORT --server http://127.0.0.1:SPORT --out DIR
//        --scenario token|no-token --study UID --match REGEX
//        --playwright DIR/node_modules/playwright-core [--timeout ms] [--chromium PATH]
//
// The Bearer token (if any) is configured by the app-config the viewer serves, not by this
// script: the browser is not routed, so every header seen here is one OHIF sent by itself.
// Chromium's own CORS preflights are real here (they are not shown as Playwright requests; count
// them from the server's access log).
//
//   token     study list -> the row matching --match is listed; click it, then "Basic Viewer"
//             (falls back to /viewer?StudyInstanceUIDs=); wait for a non-black canvas.
//   no-token  study list -> wait for the QIDO answer; the row must NOT appear; then open
//             /viewer?StudyInstanceUIDs= directly; the viewport must stay blank.
// Writes DIR/auth-<scenario>.json (steps, every request to --server with its Authorization
// header and status, console); exit 0 if the scenario's browser steps completed as expected.
'use strict';
const fs = require('fs');
const path = require('path');
const common = require('./drive_common');

const args = common.parseArgs(process.argv);
const { chromium } = require(path.resolve(args.playwright || 'node_modules/playwright-core'));
const VIEWER = (args.viewer || 'http://127.0.0.1:28080').replace(/\/$/, '');
const SERVER = new URL(args.server || 'http://127.0.0.1:8080').origin;
const OUT = path.resolve(args.out || '.');
const SCENARIO = args.scenario || 'token';
const STUDY = args.study;
const MATCH = new RegExp(args.match || 'CompressedSamples', 'i');
const TIMEOUT = parseInt(args.timeout || '60000', 10);

const t0 = Date.now();
const requests = [];   // every request the page made to SERVER
const consoleMsgs = [];
const result = { scenario: SCENARIO, viewer: VIEWER, server: SERVER, study: STUDY, steps: [] };
const step = common.makeStep(result, t0);

async function shot(page, name) {
  const f = path.join(OUT, `auth-${SCENARIO}-${name}.png`);
  try { await page.screenshot({ path: f }); } catch (e) { return null; }
  return f;
}

function isDicomweb(r) { return r.path.startsWith('/dicomweb'); }

async function waitFor(pred, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (pred()) return true;
    await new Promise(r => setTimeout(r, 250));
  }
  return pred();
}

(async () => {
  fs.mkdirSync(OUT, { recursive: true });
  const { ctx, profile, page } = await common.launch(chromium, args, 'ohif-auth-profile-');
  let ok = false;
  const pending = new Map();
  try {
    common.collectConsole(page, consoleMsgs);
    const record = async (request, response, failure) => {
      const u = new URL(request.url());
      if (u.origin !== SERVER) return;
      let headers = {};
      try { headers = await request.allHeaders(); } catch (e) { headers = request.headers(); }
      const rec = { t: Date.now() - t0, method: request.method(), path: u.pathname, query: u.search,
        accept: headers['accept'] || null, authorization: headers['authorization'] || null,
        origin: headers['origin'] || null, resourceType: request.resourceType() };
      if (response) {
        rec.status = response.status();
        const h = await response.allHeaders().catch(() => ({}));
        rec.wwwAuthenticate = h['www-authenticate'] || null;
        rec.contentType = h['content-type'] || null;
        if (rec.status >= 400) rec.body = (await response.text().catch(() => '')).slice(0, 400);
      } else {
        rec.status = null;
        rec.error = failure;
      }
      requests.push(rec);
    };
    ctx.on('requestfinished', async r => { const p = record(r, await r.response().catch(() => null), null); pending.set(r, p); await p; pending.delete(r); });
    ctx.on('requestfailed', r => { const p = record(r, null, r.failure() && r.failure().errorText); pending.set(r, p); p.then(() => pending.delete(r)); });

    // 1. study list
    await page.goto(VIEWER + '/', { waitUntil: 'domcontentloaded', timeout: TIMEOUT });
    const qidoAnswered = () => requests.some(r => isDicomweb(r) && /\/studies$/.test(r.path) && r.method === 'GET');
    const gotQido = await waitFor(qidoAnswered, TIMEOUT);
    let listed = false;
    if (SCENARIO === 'token') {
      try { await page.waitForSelector(`text=${MATCH}`, { timeout: TIMEOUT }); listed = true; } catch (e) {
        step('studylist-wait-failed', { error: String(e).slice(0, 300) });
      }
    } else {
      // give OHIF time to show whatever it got
      await page.waitForTimeout(4000);
      listed = await page.locator(`text=${MATCH}`).first().isVisible().catch(() => false);
    }
    await page.waitForTimeout(1000);
    const listText = (await page.locator('body').innerText().catch(() => '')).replace(/\s+/g, ' ');
    const emptyMsg = (listText.match(/No studies available|No matching results/i) || [null])[0];
    const errorDialog = (listText.match(/Data Source Connection Error.*?(?=Please ensure)/) || [null])[0];
    step('studylist', { qidoAnswered: gotQido, listed, emptyMessage: emptyMsg, errorDialog, url: page.url(),
      screenshot: await shot(page, 'studylist') });

    // 2. open the study
    let opened = false;
    if (SCENARIO === 'token' && listed) {
      opened = await common.openStudyByClick(page, `text=${MATCH}`, shot, step);
    }
    if (!opened && STUDY) {
      const vurl = `${VIEWER}/viewer?StudyInstanceUIDs=${STUDY}`;
      await page.goto(vurl, { waitUntil: 'domcontentloaded', timeout: TIMEOUT });
      opened = true;
      step('open-study-by-url', { ok: true, url: vurl });
    }

    // 3. the viewport
    let rendered = [];
    if (opened) {
      rendered = await common.waitRendered(page, SCENARIO === 'token' ? TIMEOUT : 15000);
      const vp = await common.viewportLocator(page, 2000);
      await page.waitForTimeout(2000);
      const vpPng = path.join(OUT, `auth-${SCENARIO}-viewport.png`);
      let vpShot = null;
      try { await vp.screenshot({ path: vpPng, timeout: 5000 }); vpShot = vpPng; } catch (e) { /* no viewport */ }
      const pageText = (await page.locator('body').innerText().catch(() => '')).replace(/\s+/g, ' ').slice(0, 400);
      step('render-check', { rendered: common.isRendered(rendered), canvases: rendered,
        screenshot: await shot(page, 'viewer'), viewport: vpShot, text: pageText });
    }
    const renderOk = common.isRendered(rendered);
    await Promise.all(Array.from(pending.values()));
    ok = SCENARIO === 'token' ? (listed && opened && renderOk) : (gotQido && !listed && !renderOk);
  } catch (e) {
    step('exception', { error: String(e && e.stack || e).slice(0, 800) });
  } finally {
    await Promise.all(Array.from(pending.values())).catch(() => {});
    result.ok = ok;
    result.requests = requests;
    result.console = consoleMsgs;
    fs.writeFileSync(path.join(OUT, `auth-${SCENARIO}.json`), JSON.stringify(result, null, 2));
    await ctx.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
  step('done', { ok, requests: requests.length });
  process.exit(ok ? 0 : 1);
})().catch(e => { console.error(e); process.exit(2); });
