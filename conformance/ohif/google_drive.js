#!/usr/bin/env node
// Browser half of google_check.py: OHIF v3's Google Cloud Healthcare data source
// (configurationAPI 'ohif.dataSourceConfigurationAPI.google') in headless Chromium, with the two
// Google hosts answered by our server.
//
//   node google_drive.js --viewer http://127.0.0.1:VPORT --server http://127.0.0.1:SPORT --out DIR
//        --scenario picker|preconfigured --study UID --playwright DIR/node_modules/playwright-core
//        [--project demo --location us-central1 --dataset ds --store ct] [--token fake] [--timeout ms]
//
// OHIF 3.13 hard-codes https://cloudresourcemanager.googleapis.com/v1 and
// https://healthcare.googleapis.com/v1 in GoogleCloudDataSourceConfigurationAPI, so the
// browser context routes every request to those two hosts to --server: same method, path, query,
// headers and body (minus Host / Accept-Encoding, plus X-Forwarded-Host/Proto so that the
// RetrieveURL / BulkDataURI values the server builds point back at the Google host), and
// answers with the server's status, headers and body unchanged (hop-by-hop headers dropped).
// Any other non-loopback request is aborted and recorded.
//
// Scenarios:
//   picker          the data source roots are only "https://healthcare.googleapis.com/v1/projects",
//                   so OHIF opens its "Configure Data Source" picker; walk project → location →
//                   dataset → DICOM store by clicking, then the study list, row, "Basic Viewer".
//   preconfigured   the roots name the store (as OHIF's own config/google.js does); OHIF restores
//                   the configured items (GET …/v1/projects/{p}), shows the list, then the viewer
//                   is opened by URL with ?token=… so DICOMweb requests carry a Bearer token.
// Writes DIR/google-<scenario>.json (steps, every forwarded request, console) and
// DIR/requests-<scenario>.jsonl; exit 0 only if every step passed.
'use strict';
const fs = require('fs');
const http = require('http');
const path = require('path');
const common = require('./drive_common');

const args = common.parseArgs(process.argv);
const { chromium } = require(path.resolve(args.playwright || 'node_modules/playwright-core'));
const VIEWER = (args.viewer || 'http://127.0.0.1:28080').replace(/\/$/, '');
const SERVER = new URL(args.server || 'http://127.0.0.1:8080');
const OUT = path.resolve(args.out || '.');
const SCENARIO = args.scenario || 'picker';
const STUDY = args.study;
const TIMEOUT = parseInt(args.timeout || '90000', 10);
const PICK = [args.project || 'demo', args.location || 'us-central1', args.dataset || 'ds', args.store || 'ct'];
const LEVELS = ['projects', 'locations', 'datasets', 'dicomStores'];
const GOOGLE_HOSTS = new Set(['healthcare.googleapis.com', 'cloudresourcemanager.googleapis.com']);
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'proxy-authenticate', 'proxy-authorization']);
if (!['127.0.0.1', 'localhost'].includes(SERVER.hostname)) throw new Error('--server must be loopback');

const t0 = Date.now();
const forwarded = [];      // every request OHIF made to the Google hosts, answered by our server
const blocked = [];        // any other non-loopback request (aborted)
const consoleMsgs = [];
const result = { scenario: SCENARIO, viewer: VIEWER, server: SERVER.origin, study: STUDY, pick: PICK, steps: [] };
const logStream = fs.createWriteStream(path.join(OUT, `requests-${SCENARIO}.jsonl`));
const step = common.makeStep(result, t0);

// Send one intercepted request to our server and return {status, headers, body}.
function forward(request, headers, body) {
  const u = new URL(request.url());
  const h = {};
  for (const [k, v] of Object.entries(headers)) {
    const lk = k.toLowerCase();
    if (lk === 'host' || lk === 'accept-encoding' || lk.startsWith(':') || HOP_BY_HOP.has(lk)) continue;
    h[lk] = v;
  }
  h['host'] = SERVER.host;
  h['x-forwarded-host'] = u.host;
  h['x-forwarded-proto'] = u.protocol.replace(':', '');
  if (body && body.length) h['content-length'] = String(body.length);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: SERVER.hostname, port: SERVER.port, method: request.method(),
      path: u.pathname + u.search, headers: h }, res => {
      const chunks = [];
      res.on('data', c => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(120000, () => req.destroy(new Error('timeout')));
    if (body && body.length) req.write(body);
    req.end();
  });
}

async function onRoute(route, request) {
  const u = new URL(request.url());
  if (!GOOGLE_HOSTS.has(u.hostname) || u.protocol !== 'https:') {
    blocked.push({ method: request.method(), url: request.url() });
    return route.abort('blockedbyclient');
  }
  const started = Date.now();
  let headers = {};
  try { headers = await request.allHeaders(); } catch (e) { headers = request.headers(); }
  const rec = { t: started - t0, method: request.method(), url: request.url(), host: u.hostname,
    path: u.pathname, query: u.search, resourceType: request.resourceType(),
    accept: headers['accept'] || null, authorization: headers['authorization'] || null,
    origin: headers['origin'] || null };
  try {
    const res = await forward(request, headers, request.postDataBuffer());
    const out = {};
    for (const [k, v] of Object.entries(res.headers)) {
      if (HOP_BY_HOP.has(k)) continue;
      out[k] = Array.isArray(v) ? v.join(', ') : String(v);
    }
    out['content-length'] = String(res.body.length);
    Object.assign(rec, { status: res.status, contentType: res.headers['content-type'] || null,
      bytes: res.body.length, ms: Date.now() - started });
    if (res.status >= 400) rec.body = res.body.toString('utf8', 0, Math.min(res.body.length, 600));
    await route.fulfill({ status: res.status, headers: out, body: res.body });
  } catch (e) {
    Object.assign(rec, { status: null, error: String(e).slice(0, 300), ms: Date.now() - started });
    try { await route.abort('failed'); } catch (e2) { /* page gone */ }
  }
  forwarded.push(rec);
  logStream.write(JSON.stringify(rec) + '\n');
}

async function shot(page, name) {
  const f = path.join(OUT, `${SCENARIO}-${name}.png`);
  try { await page.screenshot({ path: f }); } catch (e) { return null; }
  return f;
}

// One level of the "Configure Data Source" modal: wait for the row named `name`, hover it (its
// "Select" button is only visible on hover) and click the button.
async function pickItem(page, level, name) {
  const row = page.locator('div.group').filter({
    has: page.locator('div.text-muted-foreground', { hasText: new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) }),
  }).first();
  const errorText = page.locator('text=/Error fetching/i').first();
  const deadline = Date.now() + TIMEOUT;
  while (Date.now() < deadline) {
    if (await row.isVisible().catch(() => false)) break;
    if (await errorText.isVisible().catch(() => false)) break;
    await page.waitForTimeout(250);
  }
  const png = await shot(page, `${LEVELS.indexOf(level) + 1}-${level}`);
  if (!(await row.isVisible().catch(() => false))) {
    const dialog = await page.locator('[role="dialog"]').first().innerText().catch(() => null);
    const names = await page.locator('div.group div.text-muted-foreground').allInnerTexts().catch(() => []);
    step(`pick-${level}`, { ok: false, want: name, listed: names, dialog: dialog && dialog.slice(0, 600), screenshot: png });
    return false;
  }
  const listed = await page.locator('div.group div.text-muted-foreground').allInnerTexts().catch(() => []);
  await row.hover();
  await row.getByRole('button').first().click();
  step(`pick-${level}`, { ok: true, picked: name, listed, screenshot: png });
  return true;
}

(async () => {
  fs.mkdirSync(OUT, { recursive: true });
  // offline guard: anything not routed below and not loopback goes to a dead proxy
  const { ctx, profile, page } = await common.launch(chromium, args, 'ohif-google-profile-');
  let ok = false;
  try {
    await ctx.route(u => u.hostname !== '127.0.0.1' && u.hostname !== 'localhost'
      && (u.protocol === 'http:' || u.protocol === 'https:'), onRoute);
    common.collectConsole(page, consoleMsgs);
    ctx.on('requestfailed', r => {
      const u = new URL(r.url());
      if (u.hostname !== '127.0.0.1' && u.hostname !== 'localhost' && /^https?:$/.test(u.protocol)
          && !GOOGLE_HOSTS.has(u.hostname)) blocked.push({ method: r.method(), url: r.url(), failure: r.failure() && r.failure().errorText });
    });

    // 1. study list page; in the picker scenario OHIF opens the data source picker by itself
    await page.goto(VIEWER + '/', { waitUntil: 'domcontentloaded', timeout: TIMEOUT });
    let pickerOk = true;
    if (SCENARIO === 'picker') {
      for (let i = 0; i < LEVELS.length && pickerOk; i++) pickerOk = await pickItem(page, LEVELS[i], PICK[i]);
    }
    let listOk = false;
    if (pickerOk) {
      try { await page.waitForSelector('text=/Phantom/i', { timeout: TIMEOUT }); listOk = true; } catch (e) {
        step('studylist-wait-failed', { error: String(e).slice(0, 300) });
      }
    }
    await page.waitForTimeout(1500);
    step('studylist', { ok: listOk, url: page.url(), screenshot: await shot(page, 'studylist') });

    // the "Source" button in the study list header shows the configured items on hover
    let sourceText = null;
    try {
      const src = page.locator('button:has-text("Source")').first();
      if (listOk && await src.isVisible({ timeout: 3000 })) {
        await src.hover({ timeout: 5000 });
        await page.waitForTimeout(1200);
        sourceText = await page.locator('text=/Configure the server connection/').first()
          .locator('xpath=ancestor::div[contains(@class,"shadow") or @role="dialog" or @data-state][1]').innerText({ timeout: 2000 }).catch(() => null);
        step('source-hovercard', { text: sourceText && sourceText.replace(/\s+/g, ' ').slice(0, 300), screenshot: await shot(page, 'source-hovercard') });
        await page.mouse.move(700, 600);
      }
    } catch (e) { step('source-hovercard-failed', { error: String(e).slice(0, 200) }); }

    // 2. open the study
    let opened = false;
    if (listOk && SCENARIO === 'picker') {
      opened = await common.openStudyByClick(page, 'text=/Phantom/i', shot, step);
    } else if (listOk) {
      const vurl = `${VIEWER}/viewer?StudyInstanceUIDs=${STUDY}` + (args.token ? `&token=${encodeURIComponent(args.token)}` : '');
      await page.goto(vurl, { waitUntil: 'domcontentloaded', timeout: TIMEOUT });
      opened = true;
      step('open-study-by-url', { ok: true, url: vurl });
    }

    // 3. the viewport shows the CT
    let renderOk = false;
    if (opened) {
      const rendered = await common.waitRendered(page, TIMEOUT);
      renderOk = common.isRendered(rendered);
      const vp = await common.viewportLocator(page, 3000);
      await page.waitForTimeout(2500);
      const vpPng = path.join(OUT, `${SCENARIO}-viewport.png`);
      try { await vp.screenshot({ path: vpPng }); } catch (e) { /* element gone */ }
      step('render-check', { ok: renderOk, canvases: rendered, screenshot: await shot(page, 'viewer'), viewport: vpPng });
      try {
        await vp.hover();
        for (let i = 0; i < 4; i++) { await page.mouse.wheel(0, 120); await page.waitForTimeout(200); }
        await page.waitForTimeout(1500);
        const sc = path.join(OUT, `${SCENARIO}-viewport-scrolled.png`);
        await vp.screenshot({ path: sc });
        const after = await common.canvasState(page);
        step('scrolled', { ok: common.isRendered(after), canvases: after, screenshot: sc });
      } catch (e) { step('scroll-failed', { error: String(e).slice(0, 200) }); }
      await page.waitForTimeout(1500);
    }
    ok = pickerOk && listOk && opened && renderOk;
  } catch (e) {
    step('exception', { error: String(e && e.stack || e).slice(0, 800) });
  } finally {
    result.ok = ok;
    result.forwarded = forwarded;
    result.blocked = blocked;
    result.console = consoleMsgs;
    fs.writeFileSync(path.join(OUT, `google-${SCENARIO}.json`), JSON.stringify(result, null, 2));
    logStream.end();
    await ctx.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
  step('done', { ok, forwarded: forwarded.length, blocked: blocked.length });
  process.exit(ok ? 0 : 1);
})().catch(e => { console.error(e); process.exit(2); });
