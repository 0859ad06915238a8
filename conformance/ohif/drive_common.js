// Pieces shared by auth_drive.js and google_drive.js (playwright-core drivers of OHIF v3 in
// headless Chromium): argv parsing, the step recorder, the canvas probe and render wait, the
// Chromium launch, and opening a study from the study list by click.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');

// --key value / --flag (-> true) pairs from process.argv.
function parseArgs(argv) {
  const args = {};
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const nxt = argv[i + 1];
    if (nxt === undefined || nxt.startsWith('--')) args[a.slice(2)] = true;
    else { args[a.slice(2)] = nxt; i++; }
  }
  return args;
}

// step(name, extra): appends {name, t, ...extra} to result.steps, logs it as a JSON line.
function makeStep(result, t0) {
  return function step(name, extra) {
    const s = Object.assign({ name, t: Date.now() - t0 }, extra || {});
    result.steps.push(s);
    console.log(JSON.stringify(s));
    return s;
  };
}

// Per viewport canvas: size, fraction of sampled pixels that are not black, mean brightness.
async function canvasState(page) {
  return page.evaluate(() => {
    let cs = Array.from(document.querySelectorAll('canvas.cornerstone-canvas, .cornerstone-viewport-element canvas, [data-viewport-uid] canvas'));
    if (!cs.length) cs = Array.from(document.querySelectorAll('canvas'));
    const out = [];
    for (const c of cs) {
      if (!c.width || !c.height) continue;
      let nonBlack = 0, total = 0, sum = 0;
      try {
        const g = c.getContext('2d');
        if (!g) { out.push({ w: c.width, h: c.height, ctx: 'not-2d' }); continue; }
        const d = g.getImageData(0, 0, c.width, c.height).data;
        for (let i = 0; i < d.length; i += 4 * 7) { total++; const v = d[i] + d[i + 1] + d[i + 2]; sum += v; if (v > 30) nonBlack++; }
      } catch (e) { out.push({ err: String(e) }); continue; }
      out.push({ w: c.width, h: c.height, nonBlackFrac: nonBlack / total, mean: sum / total / 3 });
    }
    return out;
  });
}

function isRendered(canvases) { return canvases.some(r => r.nonBlackFrac > 0.05); }

// Poll canvasState until a canvas is not blank or `ms` pass; returns the last state.
async function waitRendered(page, ms) {
  let rendered = [];
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    rendered = await canvasState(page).catch(() => []);
    if (isRendered(rendered)) break;
    await page.waitForTimeout(1000);
  }
  return rendered;
}

// Headless Chromium with a fresh profile dir; anything not loopback (and not routed by the
// caller) goes to a dead proxy. Returns {ctx, profile}; the caller removes `profile`.
async function launch(chromium, args, profilePrefix) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), profilePrefix));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: args.chromium || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1400, height: 900 },
    serviceWorkers: 'block',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage', '--window-size=1400,900',
      '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
      '--proxy-server=http://127.0.0.1:9', '--proxy-bypass-list=127.0.0.1;localhost'],
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  return { ctx, profile, page };
}

// Console messages and page errors of `page`, pushed to `sink`.
function collectConsole(page, sink) {
  page.on('console', m => sink.push(`[${m.type()}] ${m.text()}`.slice(0, 500)));
  page.on('pageerror', e => sink.push(`[pageerror] ${String(e).slice(0, 500)}`));
}

// Study list: click the row matching `selector`, then "Basic Viewer"; records the
// open-study-by-click step. `shot(page, name)` takes a screenshot. -> true if /viewer opened.
async function openStudyByClick(page, selector, shot, step) {
  try {
    await page.click(selector);
    await page.waitForTimeout(1500);
    const expanded = await shot(page, 'studylist-expanded');
    const btn = page.locator('button:has-text("Basic Viewer"), [data-cy="mode-basic"], button:has-text("Basic")').first();
    await Promise.all([page.waitForURL(/\/viewer/, { timeout: 30000 }), btn.click()]);
    step('open-study-by-click', { ok: true, url: page.url(), screenshot: expanded });
    return true;
  } catch (e) {
    step('open-study-by-click', { ok: false, error: String(e).slice(0, 300) });
    return false;
  }
}

// Dismiss OHIF's onboarding tour if it shows; return the viewport element locator.
async function viewportLocator(page, skipTimeout) {
  try {
    const skip = page.locator('text="Skip all"').first();
    if (await skip.isVisible({ timeout: skipTimeout })) { await skip.click(); }
  } catch (e) { /* no onboarding tour */ }
  return page.locator('.cornerstone-viewport-element, [data-cy="viewport-pane"], .viewport-element, .cornerstone-canvas').first();
}

module.exports = {
  parseArgs, makeStep, canvasState, isRendered, waitRendered, launch, collectConsole,
  openStudyByClick, viewportLocator,
};
