#!/usr/bin/env node
// OHIF v3, served by `pacs serve --viewer`, in headless Chromium (playwright-core): the study
// list, a patient-name filter typed in lower case, and one study opened to a rendered image.
//
//   node drive.js --base http://127.0.0.1:PORT --playwright DIR/node_modules/playwright-core
//        --out DIR --studies N --filter TEXT --open TEXT [--chromium PATH] [--timeout ms]
//
// Waits for N rows in the study list, types TEXT in the patient-name filter, then opens the
// row showing --open. Prints one JSON object on its last line: the rows (their text), the rows
// after the filter, whether the study opened and a viewport rendered, the screenshots, and the
// console errors. The checks are made by tests/test_viewer.py, not here.
'use strict';
const fs = require('fs');
const path = require('path');
const common = require('../../conformance/ohif/drive_common');

const args = common.parseArgs(process.argv);
const { chromium } = require(path.resolve(args.playwright));
const BASE = args.base.replace(/\/$/, '');
const OUT = path.resolve(args.out);
const TIMEOUT = parseInt(args.timeout || '60000', 10);
const ROW = 'table tbody tr';
const FAILED = 'div:has(> * :text("Data Source Connection Error"))';  // OHIF's error dialog

async function rows(page) {
  return page.$$eval(ROW, trs => trs.map(tr => tr.innerText.replace(/\s+/g, ' ').trim())
    .filter(text => text));
}

async function settle(page, expect) {
  // the list is filtered by a debounced search: wait until the rows satisfy `expect`, or
  // OHIF says its data source failed
  const deadline = Date.now() + TIMEOUT;
  let seen = await rows(page);
  while (!expect(seen) && Date.now() < deadline) {
    if (await page.locator(FAILED).first().isVisible()) {
      throw new Error(`OHIF: ${await page.locator(FAILED).first().innerText()}`);
    }
    await page.waitForTimeout(250);
    seen = await rows(page);
  }
  return seen;
}

(async () => {
  fs.mkdirSync(OUT, { recursive: true });
  const result = { steps: [], console: [] };
  const step = common.makeStep(result, Date.now());
  const shot = async (page, name) => {
    const file = path.join(OUT, `${name}.png`);
    await page.screenshot({ path: file }).catch(() => null);
    return file;
  };
  const { ctx, profile, page } = await common.launch(chromium, args, 'pacs-viewer-');
  try {
    common.collectConsole(page, result.console);
    await page.goto(`${BASE}/viewer/`, { waitUntil: 'domcontentloaded', timeout: TIMEOUT });
    await page.waitForSelector(ROW, { timeout: TIMEOUT });
    result.studyList = await settle(page, seen => seen.length >= parseInt(args.studies || '1', 10));
    step('study-list', { screenshot: await shot(page, 'study-list'), rows: result.studyList.length });

    const name = page.locator('table input, thead input, input[type="text"]').first();
    await name.fill(args.filter);
    result.filtered = await settle(page, seen => seen.length < result.studyList.length);
    step('filtered', { screenshot: await shot(page, 'study-list-filtered') });
    await name.fill('');
    await settle(page, seen => seen.length === result.studyList.length);

    result.opened = await common.openStudyByClick(page, `${ROW}:has-text("${args.open}")`,
      shot, step);
    await common.viewportLocator(page, 3000);
    const canvases = await common.waitRendered(page, TIMEOUT);
    result.rendered = common.isRendered(canvases);
    result.viewerUrl = page.url();
    step('rendered', { ok: result.rendered, canvases, screenshot: await shot(page, 'viewport') });
  } catch (e) {
    result.error = String(e).slice(0, 500);
    await shot(page, 'failure');
  } finally {
    await ctx.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
  console.log(JSON.stringify(result));
})();
