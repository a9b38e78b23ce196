import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureMavenJars, pinnedVersion, type MavenServer } from './maven-jars.js';

const kafka: MavenServer = {
  name: 'Kafka',
  pomFile: path.join(path.dirname(fileURLToPath(import.meta.url)), 'kafka.pom.xml'),
  versionProperty: 'kafka.version',
};

/** The Kafka version pinned in kafka.pom.xml. */
export function kafkaVersion(): string {
  return pinnedVersion(kafka);
}

/** Directory holding the broker's jars, downloaded once from Maven Central into the cache. */
export function ensureKafkaJars(cacheDir: string, log: (msg: string) => void): string {
  return ensureMavenJars(kafka, cacheDir, log);
}
