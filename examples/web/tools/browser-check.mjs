// Drive the page in a real (headless) Chromium: open it, set the two file inputs, wait for the
// score, print what the page shows as one JSON line. Used by the project's tests; handy by hand:
//
//   node tools/browser-check.mjs http://127.0.0.1:8000/ CLEAN.wav DEGRADED.wav [--screenshot out.png]
//        [--graph GRAPH.onnx] [--timeout SECONDS]
//
// --graph picks a graph with the page's "Another graph" input instead of its default model/graph.onnx.
// Chromium: $CHROMIUM, else /usr/bin/chromium (Debian's `apt-get install chromium`); driven by
// playwright-core (no browser download). Exit 0 with the JSON when the page scored or showed an
// error ({"state": "error", "error": ...}); 1 when the page did neither in time.
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import process from 'node:process';

import { chromium } from 'playwright-core';

const args = process.argv.slice(2);
let screenshot = null;
let graph = null;
let timeout = 120_000;
const pos = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--screenshot') screenshot = args[++i];
  else if (args[i] === '--graph') graph = args[++i];
  else if (args[i] === '--timeout') timeout = Number(args[++i]) * 1000;
  else pos.push(args[i]);
}
if (pos.length !== 3) {
  console.error(
    'usage: node tools/browser-check.mjs URL CLEAN DEGRADED [--screenshot PNG] [--graph GRAPH.onnx] [--timeout SECONDS]',
  );
  process.exit(2);
}
const [url, clean, degraded] = pos;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
if (!existsSync(executablePath)) {
  console.error(`browser-check: no Chromium at ${executablePath} (set CHROMIUM)`);
  process.exit(2);
}

const browser = await chromium.launch({ executablePath, headless: true, args: ['--disable-gpu'] });
const log = [];
try {
  const page = await browser.newPage({ viewport: { width: 940, height: 900 }, deviceScaleFactor: 1 });
  page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
  await page.goto(url);
  // the default graph is loaded (or its absence / an error shown) before the files are set
  await page.waitForFunction(() => ['ready', 'no-graph', 'error'].includes(window.pqeval?.state), null, { timeout });
  if (graph) {
    const name = basename(graph);
    await page.setInputFiles('#graph-file', graph);
    const loaded = (n) =>
      (window.pqeval?.graph?.name === n && window.pqeval.state !== 'loading') || window.pqeval?.state === 'error';
    await page.waitForFunction(loaded, name, { timeout });
  }
  await page.setInputFiles('#clean', clean);
  await page.setInputFiles('#degraded', degraded);
  await page.waitForFunction(() => ['done', 'error'].includes(window.pqeval?.state), null, { timeout });
  const out = await page.evaluate(() => {
    const w = document.getElementById('warning');
    return {
      state: window.pqeval.state,
      error: window.pqeval.error,
      score_text: document.getElementById('score').textContent,
      warning_text: w.textContent,
      warning_visible: !w.hidden && w.offsetParent !== null && w.getBoundingClientRect().height > 0,
      plot_points: document.querySelectorAll('#plot polyline').length
        ? document.querySelector('#plot polyline').getAttribute('points').split(' ').length
        : 0,
      graph: window.pqeval.graph,
      result: window.pqeval.result,
      status: document.getElementById('status').textContent,
    };
  });
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ ...out, console: log }));
} catch (e) {
  console.error(`browser-check: ${e.message}`);
  for (const line of log) console.error(`  ${line}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
