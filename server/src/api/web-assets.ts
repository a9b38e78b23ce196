/**
 * The dashboard's production build (web/dist, made by `npm run build`) served by the API process:
 * hashed assets cached for a year, index.html never cached (so a new build is picked up at the
 * next load), and every other GET that is not an API path answered with index.html (the Vue
 * router's history mode). Without a build, a small page says how to make one.
 *
 * `ensureWebBuild` (re)builds web/dist when it is missing or older than the sources; `tally api`
 * and the dashboard e2e test call it before serving.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import express from 'express';
import { repoRoot } from '../config/index.js';
import { TallyError } from '../errors/index.js';

export const webDir = path.join(repoRoot, 'web');
export const webDistDir = path.join(webDir, 'dist');
const indexFile = path.join(webDistDir, 'index.html');

/** Paths that belong to the server, never to the SPA fallback. */
const SERVER_PATHS = /^\/(api|socket\.io|metrics|healthz|readyz)(\/|$)/;

const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>tally: dashboard not built</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:10vh auto;padding:0 1rem;line-height:1.5}code{background:#f0f3f7;padding:2px 5px;border-radius:4px}</style>
</head><body>
<h1>The dashboard is not built yet</h1>
<p>The API is running; the web dashboard needs a production build in <code>web/dist</code>:</p>
<pre><code>npm run build</code></pre>
<p>then reload this page. During development, <code>npm run dev:web</code> serves it with hot reload on
<a href="http://127.0.0.1:5173">http://127.0.0.1:5173</a> (API calls are proxied here).</p>
</body></html>
`;

/** Serves web/dist (see the module comment). Mount it after the API routes. */
export function webAssetsRouter(): express.Router {
  const router = express.Router();

  // Hashed file names: content-addressed, cache forever; a missing asset is a 404, not the SPA page.
  router.use('/assets', express.static(path.join(webDistDir, 'assets'), { immutable: true, maxAge: '1y', index: false, redirect: false }));
  router.use('/assets', (_req, res) => {
    res.status(404).type('text/plain').send('no such asset (the dashboard was rebuilt: reload the page)');
  });

  // Other files of the build (favicon, …): revalidate every time.
  router.use(express.static(webDistDir, {
    index: false, redirect: false,
    setHeaders: (res) => res.setHeader('Cache-Control', 'no-cache'),
  }));

  // The SPA fallback: any other GET/HEAD that is not a server path and accepts HTML.
  router.use((req, res, next) => {
    if ((req.method !== 'GET' && req.method !== 'HEAD') || SERVER_PATHS.test(req.path)) return next();
    if (!req.accepts('html')) return next();
    res.setHeader('Cache-Control', 'no-cache');
    if (!fs.existsSync(indexFile)) {
      res.status(503).type('html').send(NOT_BUILT_PAGE);
      return;
    }
    res.sendFile(indexFile, (err) => {
      if (err && !res.headersSent) next(err);
    });
  });

  return router;
}

// ---------------------------------------------------------------------------------------------

/** Sources of the build: web/src/**, web/index.html, the build config and web/public if any. */
function newestSourceMtime(): number {
  let newest = 0;
  const visit = (p: string) => {
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch {
      return;
    }
    if (st.isDirectory()) {
      for (const name of fs.readdirSync(p)) visit(path.join(p, name));
    } else if (st.mtimeMs > newest) {
      newest = st.mtimeMs;
    }
  };
  for (const p of ['src', 'public', 'index.html', 'vite.config.ts']) visit(path.join(webDir, p));
  return newest;
}

/** True if web/dist/index.html is missing or older than any source file. */
export function webBuildIsStale(): boolean {
  let built: number;
  try {
    built = fs.statSync(indexFile).mtimeMs;
  } catch {
    return true;
  }
  return newestSourceMtime() > built;
}

let inProcess: Promise<void> | undefined;

/**
 * Builds web/dist if it is missing or stale; does nothing otherwise. Safe to call concurrently,
 * from one process (one build) or several (a lock file: the others wait for it and re-check).
 * The build goes to a temporary directory first and replaces web/dist in one rename, so a
 * server never serves a half-written build.
 */
export function ensureWebBuild(log: (m: string) => void): Promise<void> {
  inProcess ??= buildIfStale(log).finally(() => {
    inProcess = undefined;
  });
  return inProcess;
}

const LOCK_STALE_MS = 5 * 60_000;

async function buildIfStale(log: (m: string) => void): Promise<void> {
  if (!webBuildIsStale()) return;
  const lockFile = path.join(webDir, '.build.lock');
  const lock = await acquireLock(lockFile, log);
  try {
    // Another process may have built it while we waited for the lock.
    if (!webBuildIsStale()) return;
    await runViteBuild(log);
  } finally {
    fs.closeSync(lock);
    fs.rmSync(lockFile, { force: true });
  }
}

async function acquireLock(lockFile: string, log: (m: string) => void): Promise<number> {
  let announced = false;
  for (;;) {
    try {
      return fs.openSync(lockFile, 'wx');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    try {
      if (Date.now() - fs.statSync(lockFile).mtimeMs > LOCK_STALE_MS) {
        fs.rmSync(lockFile, { force: true }); // left by a killed build
        continue;
      }
    } catch {
      continue; // released meanwhile
    }
    if (!announced) {
      log('web: another process is building the dashboard; waiting for it');
      announced = true;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

function runViteBuild(log: (m: string) => void): Promise<void> {
  const viteBin = path.join(repoRoot, 'node_modules', 'vite', 'bin', 'vite.js');
  if (!fs.existsSync(viteBin)) {
    return Promise.reject(new TallyError('cannot build the dashboard: vite is not installed (run `npm install` with dev dependencies, or build web/dist elsewhere with `npm run build`)'));
  }
  const tmpDir = path.join(webDir, `.dist-${process.pid}-${Date.now()}`);
  const started = Date.now();
  log('web: building the dashboard (vite build → web/dist)');
  return new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, [viteBin, 'build', '--config', path.join(webDir, 'vite.config.ts'), '--outDir', tmpDir, '--emptyOutDir', '--logLevel', 'warn'], {
      cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_ENV: 'production' },
    });
    let output = '';
    const keep = (b: Buffer) => {
      output = (output + b.toString()).slice(-4000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code !== 0) {
        fs.rmSync(tmpDir, { recursive: true, force: true });
        reject(new TallyError(`dashboard build failed (${signal ?? `exit ${code}`}):\n${output.trim()}`));
        return;
      }
      try {
        const old = path.join(webDir, `.dist-old-${process.pid}-${Date.now()}`);
        if (fs.existsSync(webDistDir)) fs.renameSync(webDistDir, old);
        fs.renameSync(tmpDir, webDistDir);
        fs.rmSync(old, { recursive: true, force: true });
      } catch (err) {
        reject(err);
        return;
      }
      log(`web: dashboard built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      resolve();
    });
  });
}
