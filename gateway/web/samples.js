/**
 * The demo's sample entries: shown only in dev mode, while disconnected, for the selected
 * channels, marked as samples (the page removes them once it connects).
 */

const SAMPLES = [
  ['etl', 'workflow456', 'info', 'workflow workflow456 started: extract, transform, load'],
  ['etl', 'workflow456', 'debug', 'extract: connected to warehouse (pool 4/10)'],
  ['etl', 'workflow456', 'info', 'extract: read 12,480 rows from orders in 1.8 s'],
  ['etl', 'workflow456', 'warn', 'transform: skipped 37 rows with an empty customer_id'],
  ['faas', 'function789', 'info', 'cold start in 412 ms (python3.12, 256 MB)'],
  ['faas', 'function789', 'debug', 'invocation 7f3a: GET /resize?w=640'],
  ['faas', 'function789', 'error', 'invocation 7f3b: TimeoutError after 30,000 ms'],
  ['analytics', '', 'info', 'query q-5521 scheduled: daily revenue by region'],
  ['analytics', '', 'debug', 'query q-5521 scanned 2.4 GB across 18 partitions'],
  ['etl', 'workflow456', 'info', 'load: wrote 12,443 rows to analytics.orders_daily'],
  ['faas', 'function789', 'warn', 'memory at 91% of 256 MB; consider a larger size'],
  ['analytics', '', 'warn', 'query q-5521 spilled 310 MB to disk'],
  ['faas', 'function789', 'info', 'invocation 7f3c completed in 88 ms'],
  ['etl', 'workflow456', 'error', 'load: deadlock on analytics.orders_daily; retry 1/3 in 5 s'],
  ['analytics', '', 'info', 'query q-5521 finished in 14.2 s, 96 rows'],
];
const SEVERITY = { debug: 5, info: 9, warn: 13, error: 17 };

/** The 15 samples for `workspace`, a few seconds apart and ending at `end` (ms). */
export function sampleEntries(workspace, end) {
  return SAMPLES.map(([service, resource, level, message], i) => ({
    channel: ['logs', service, workspace, resource].filter(Boolean).join(':'),
    offset: i,
    time: new Date(end - (SAMPLES.length - i) * 7000).toISOString(),
    level,
    severity: SEVERITY[level],
    message,
    source: service,
    attributes: {},
    sample: true,
  }));
}
