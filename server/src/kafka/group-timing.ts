import type Kafka from 'node-rdkafka';

/**
 * The timing tally's group members share (the aggregator, the sinks): a member that stops
 * heartbeating (every second) is out of the group after 10 s; a loop may spend up to 5 minutes
 * between polls (a long restore) before it counts as stuck; a fetch returns within 50 ms when
 * there is little to read, so a trickle is not held back; at most 64 MB wait fetched in memory.
 */
export const GROUP_MEMBER_TIMING: Kafka.ConsumerGlobalConfig = {
  'session.timeout.ms': 10_000,
  'heartbeat.interval.ms': 1_000,
  'max.poll.interval.ms': 300_000,
  'fetch.wait.max.ms': 50,
  'queued.max.messages.kbytes': 65_536,
};
