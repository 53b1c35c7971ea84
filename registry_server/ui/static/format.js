// Pure helpers: durations, timestamps and counts. No DOM, no clock of their own (now is passed in).

export const STATUSES = ["UP", "DOWN", "STARTING", "STOPPING"];

/** "850 ms", "12 s", "3 min 04 s", "2 h 05 min", "3 d 04 h" for a non-negative number of milliseconds. */
export function formatDuration(ms) {
  if (!Number.isFinite(ms)) return "–";
  const value = Math.max(0, ms);
  if (value < 1000) return `${Math.round(value)} ms`;
  const s = Math.floor(value / 1000);
  if (s < 60) return `${s} s`;
  const pad = (n) => String(n).padStart(2, "0");
  if (s < 3600) return `${Math.floor(s / 60)} min ${pad(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} min`;
  return `${Math.floor(s / 86400)} d ${pad(Math.floor((s % 86400) / 3600))} h`;
}

/** How long ago a heartbeat was, e.g. "3 s ago". */
export function heartbeatAge(instance, now) {
  return `${formatDuration(now - Date.parse(instance.last_heartbeat))} ago`;
}

/** Time left on the lease, and whether it has run out (the sweeper removes it shortly). */
export function timeToExpiry(instance, now) {
  const left = Date.parse(instance.expires_at) - now;
  return left > 0 ? { text: formatDuration(left), expired: false } : { text: "lease ran out", expired: true };
}

/** "2026-11-27 12:00:00" (UTC) from an RFC 3339 timestamp (the registry's are UTC). */
export function formatTimestamp(rfc3339) {
  const t = new Date(rfc3339);
  if (Number.isNaN(t.getTime())) return rfc3339;
  return t.toISOString().slice(0, 19).replace("T", " ");
}

/** "zone=eu-1, canary=true", keys sorted. */
export function formatMetadata(metadata) {
  return Object.keys(metadata || {}).sort().map((k) => `${k}=${metadata[k]}`).join(", ");
}

/** [{name, instances, statuses: {UP: n, ...}}] sorted by name, from a list of instances. */
export function countsByService(instances) {
  const byName = new Map();
  for (const inst of instances) {
    let entry = byName.get(inst.name);
    if (!entry) {
      entry = { name: inst.name, instances: 0, statuses: Object.fromEntries(STATUSES.map((s) => [s, 0])) };
      byName.set(inst.name, entry);
    }
    entry.instances += 1;
    entry.statuses[inst.status] = (entry.statuses[inst.status] || 0) + 1;
  }
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Instances passing the filters (name: case-insensitive substring of the service name or id; status: exact). */
export function filterInstances(instances, { name = "", status = "" } = {}) {
  const needle = name.trim().toLowerCase();
  return instances.filter((inst) =>
    (!needle || inst.name.toLowerCase().includes(needle) || inst.id.toLowerCase().includes(needle))
    && (!status || inst.status === status));
}

/** Sorted by service name, then id (the registry sorts by id alone). */
export function byServiceThenId(a, b) {
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
