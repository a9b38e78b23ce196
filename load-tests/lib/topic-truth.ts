import { parseImpression } from '../../server/src/impression/index.js';
import { compareTruthRows, emptyDeadLetters, readTopicToEnd, truthRowKey, type GroundTruth, type TruthRow } from '../../server/src/tools/index.js';
import type { Sandbox } from '../../test/kit/sandbox.js';

/**
 * The truth of what reached the sandbox's impressions topic, read back to its end: unique valid
 * events by (window, advertiser, campaign); `idPrefix` is the run's id prefix. `expectedRecords`
 * (what k6 had acknowledged) sizes the time allowed: 2 min, plus 1 s per 20,000 records.
 */
export async function truthFromTopic(sb: Sandbox, idPrefix: string, expectedRecords: number): Promise<{ truth: GroundTruth; records: number; invalid: number }> {
  const windowMs = sb.config.windowMs;
  const seen = new Set<string>();
  const rows = new Map<string, TruthRow>();
  let records = 0;
  let invalid = 0;
  await readTopicToEnd(sb.config.kafka.brokers, sb.config.topics.impressions, (m) => {
    records++;
    const p = parseImpression(m.value);
    if (!p.ok) {
      invalid++;
      return;
    }
    const e = p.impression;
    if (seen.has(e.impressionId)) return;
    seen.add(e.impressionId);
    const windowStart = Math.floor(e.ts / windowMs) * windowMs;
    const k = truthRowKey({ windowStart, advertiserId: e.advertiserId, campaignId: e.campaignId });
    const row = rows.get(k) ?? { windowStart, advertiserId: e.advertiserId, campaignId: e.campaignId, impressions: 0, spendMicros: 0 };
    row.impressions++;
    row.spendMicros += e.costMicros;
    rows.set(k, row);
  }, { timeoutMs: 120_000 + Math.ceil(expectedRecords / 20), isolation: 'read_uncommitted' });
  const generatedAt = new Date().toISOString();
  const valid = records - invalid;
  const truth: GroundTruth = {
    windowMs,
    idPrefix,
    generatedAt,
    counts: { sent: records, valid, unique: seen.size, duplicatesSent: valid - seen.size, lateWithinHorizon: 0 },
    deadLetters: emptyDeadLetters(),
    rows: [...rows.values()].sort(compareTruthRows),
    phases: [{ idPrefix, seed: 0, generatedAt }],
  };
  return { truth, records, invalid };
}
