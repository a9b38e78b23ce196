import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { StackError } from '../errors/index.js';
import { commandExists } from './processes.js';

const pomFile = path.join(path.dirname(fileURLToPath(import.meta.url)), 'kafka.pom.xml');

/** The Kafka version pinned in kafka.pom.xml. */
export function kafkaVersion(): string {
  const m = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(fs.readFileSync(pomFile, 'utf8'));
  if (!m) throw new StackError(`no kafka.version in ${pomFile}`);
  return m[1];
}

/**
 * Directory holding the broker's jars, downloaded once from Maven Central into the cache.
 * Keyed by the pom's content so a version bump fetches anew.
 */
export function ensureKafkaJars(cacheDir: string, log: (msg: string) => void): string {
  if (!commandExists('java')) throw new StackError('java not found: install a JDK 17+ (Debian: apt-get install openjdk-17-jre-headless)');
  const pom = fs.readFileSync(pomFile, 'utf8');
  const key = `${kafkaVersion()}-${simpleHash(pom)}`;
  const dir = path.join(cacheDir, `kafka-${key}`);
  const libs = path.join(dir, 'libs');
  if (fs.existsSync(path.join(dir, '.complete'))) return libs;
  if (!commandExists('mvn')) throw new StackError('mvn not found: install Maven (Debian: apt-get install maven) to fetch the Kafka jars once');
  log(`downloading Kafka ${kafkaVersion()} jars from Maven Central into ${dir} (one time)`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const r = spawnSync('mvn', ['-q', '-B', '-f', pomFile, 'dependency:copy-dependencies', `-DoutputDirectory=${libs}`, '-DincludeScope=runtime'], { stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) {
    throw new StackError(`maven could not fetch the Kafka jars:\n${(r.stdout.toString() + r.stderr.toString()).trim().slice(-2000)}`);
  }
  fs.writeFileSync(path.join(dir, '.complete'), new Date().toISOString());
  return libs;
}

function simpleHash(text: string): string {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return (h >>> 0).toString(16);
}
