// k6 module shared by the ingest scripts: an ingest answer's Server-Timing phases.

/**
 * `Server-Timing: body;dur=0.3, validate;dur=2.1, kafka;dur=35.0` → { body, validate, kafka, outside } in ms,
 * `outside` being the rest of k6's time to first byte (network, token check, queueing in the api);
 * undefined when the answer has no such header (a refusal before the ingest handler).
 */
export function serverPhases(res) {
  const header = res.headers['Server-Timing'];
  if (!header) return undefined;
  const phases = {};
  for (const part of header.split(',')) {
    const m = /^\s*(\w+);dur=([\d.]+)/.exec(part);
    if (m) phases[m[1]] = Number(m[2]);
  }
  if (phases.kafka === undefined || phases.validate === undefined || phases.body === undefined) return undefined;
  const inHandler = phases.kafka + phases.validate + phases.body;
  return { body: phases.body, validate: phases.validate, kafka: phases.kafka, outside: Math.max(0, res.timings.waiting - inHandler) };
}
