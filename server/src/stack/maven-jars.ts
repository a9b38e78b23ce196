import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { StackError } from '../errors/index.js';
import { commandExists } from './processes.js';

/** A server distributed as Maven artifacts: its pom (next to this file) pins the version. */
export interface MavenServer {
  /** What a message calls it ("Kafka", "ZooKeeper"). */
  name: string;
  pomFile: string;
  /** The pom's property holding the version (`kafka.version`). */
  versionProperty: string;
}

/** The version pinned in the server's pom. */
export function pinnedVersion(server: MavenServer): string {
  const prop = server.versionProperty.replaceAll('.', '\\.');
  const m = new RegExp(`<${prop}>([^<]+)</${prop}>`).exec(fs.readFileSync(server.pomFile, 'utf8'));
  if (!m) throw new StackError(`no ${server.versionProperty} in ${server.pomFile}`);
  return m[1];
}

/**
 * Directory holding the server's jars, downloaded once from Maven Central into the cache.
 * Keyed by the pom's content so a version bump fetches anew.
 */
export function ensureMavenJars(server: MavenServer, cacheDir: string, log: (msg: string) => void): string {
  if (!commandExists('java')) throw new StackError('java not found: install a JDK 17+ (Debian: apt-get install openjdk-17-jre-headless)');
  const pom = fs.readFileSync(server.pomFile, 'utf8');
  const version = pinnedVersion(server);
  const dir = path.join(cacheDir, `${server.name.toLowerCase()}-${version}-${simpleHash(pom)}`);
  const libs = path.join(dir, 'libs');
  if (fs.existsSync(path.join(dir, '.complete'))) return libs;
  if (!commandExists('mvn')) throw new StackError(`mvn not found: install Maven (Debian: apt-get install maven) to fetch the ${server.name} jars once`);
  log(`downloading ${server.name} ${version} jars from Maven Central into ${dir} (one time)`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const r = spawnSync('mvn', ['-q', '-B', '-f', server.pomFile, 'dependency:copy-dependencies', `-DoutputDirectory=${libs}`, '-DincludeScope=runtime'], { stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) {
    throw new StackError(`maven could not fetch the ${server.name} jars:\n${(r.stdout.toString() + r.stderr.toString()).trim().slice(-2000)}`);
  }
  fs.writeFileSync(path.join(dir, '.complete'), new Date().toISOString());
  return libs;
}

function simpleHash(text: string): string {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return (h >>> 0).toString(16);
}
