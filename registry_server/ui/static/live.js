// Keeps a live copy of every instance: a snapshot of GET /instances, then the change stream (GET /events)
// applied to it, and a periodic re-read for heartbeat times (a plain heartbeat is not an event). When the
// stream fails, the re-read becomes the update mechanism (polling) until the stream is back.

import { readEventStream } from "./sse.js";

const UPSERTS = new Set(["registered", "updated", "status_changed"]);
const REMOVALS = new Set(["deregistered", "expired"]);

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

export class LiveInstances {
  /**
   * @param {import("./api.js").RegistryApi} api
   * @param {object} hooks onChange(), onState(state, detail), onNews(text)
   * @param {object} timing refreshMs: re-read while the stream is up; pollMs: re-read while it is down
   */
  constructor(api, hooks, { refreshMs = 5000, pollMs = 2000 } = {}) {
    this.api = api;
    this.hooks = hooks;
    this.refreshMs = refreshMs;
    this.pollMs = pollMs;
    this.instances = new Map();
    this.state = "connecting";
    this.run = null;
  }

  /** (Re)start from nothing: a new snapshot, a new stream. Called again when the token changes. */
  start() {
    this.stop();
    const run = {
      abort: new AbortController(), lastEventId: null, buffer: null, again: false, loaded: false, paused: false,
    };
    this.run = run;
    this.instances = new Map();
    this.setState("connecting");
    this.streamLoop(run);
    this.refreshLoop(run);
  }

  stop() {
    if (this.run) this.run.abort.abort();
    this.run = null;
  }

  list() {
    return [...this.instances.values()];
  }

  /** Whether the first snapshot of this run has arrived: before it, an empty list means "not known yet". */
  get loaded() {
    return Boolean(this.run && this.run.loaded);
  }

  setState(state, detail = "") {
    this.state = state;
    this.hooks.onState(state, detail);
  }

  async streamLoop(run) {
    const { signal } = run.abort;
    let failures = 0;
    while (!signal.aborted) {
      const headers = run.lastEventId ? { "Last-Event-ID": run.lastEventId } : {};
      let opened = false;
      try {
        await readEventStream(this.api.url("/events"), {
          headers: this.api.headers(headers),
          signal,
          onOpen: () => { opened = true; failures = 0; },
          onEvent: (event) => this.onEvent(run, event),
        });
      } catch (exc) {
        if (signal.aborted) return;
        if (exc.status === 401) { this.unauthorized(run); return; }
        if (exc.status === 404) { this.setState("polling", "this registry has no change stream"); return; }
      }
      if (signal.aborted) return;
      // A stream that was open and ended (a proxy or server cut it) resumes at once from Last-Event-ID;
      // one that could not be opened is retried with backoff while the re-reads poll.
      if (opened) { await sleep(250, signal); continue; }
      failures += 1;
      this.setState("polling", "the change stream is down; reconnecting");
      await sleep(Math.min(500 * 2 ** failures, 15000), signal);
    }
  }

  async refreshLoop(run) {
    const { signal } = run.abort;
    await this.snapshot(run);
    while (!signal.aborted) {
      await sleep(this.state === "live" ? this.refreshMs : this.pollMs, signal);
      if (!signal.aborted && !run.paused) await this.snapshot(run);
    }
  }

  unauthorized(run) {
    run.paused = true;
    this.setState("unauthorized", "this registry needs a token to read");
  }

  onEvent(run, { event, data, id }) {
    if (id) run.lastEventId = id;
    if (event === "ready") {
      this.setState("live");
      this.snapshot(run); // whatever changed while the stream was down
      return;
    }
    if (event === "reset") {
      this.snapshot(run);
      return;
    }
    if (!UPSERTS.has(event) && !REMOVALS.has(event)) return;
    const change = JSON.parse(data);
    if (run.buffer) run.buffer.push(change); // re-applied on top of the snapshot in flight
    this.apply(change, true);
    this.hooks.onChange();
  }

  apply(change, announce) {
    const inst = change.instance;
    if (REMOVALS.has(change.type)) {
      if (this.instances.delete(inst.id) && announce) this.hooks.onNews(`${inst.id} (${inst.name}) ${change.type}`);
      return;
    }
    const before = this.instances.get(inst.id);
    this.instances.set(inst.id, inst);
    if (!announce) return;
    if (!before) this.hooks.onNews(`${inst.id} (${inst.name}) registered, ${inst.status}`);
    else if (before.status !== inst.status) this.hooks.onNews(`${inst.id} (${inst.name}) is now ${inst.status}`);
  }

  async snapshot(run) {
    if (run.abort.signal.aborted) return;
    if (run.buffer) { // one at a time; a request made meanwhile (say, the stream's ready) runs after it
      run.again = true;
      return;
    }
    run.buffer = [];
    run.again = false;
    try {
      const fresh = await this.api.instances();
      if (run !== this.run) return;
      const before = this.instances;
      this.instances = new Map(fresh.map((inst) => [inst.id, inst]));
      for (const change of run.buffer) this.apply(change, false);
      if (run.loaded) this.announceDiff(before);
      run.loaded = true;
      run.paused = false;
      if (this.state === "unauthorized" || this.state === "connecting") this.setState("polling", "");
      this.hooks.onChange();
    } catch (exc) {
      if (run !== this.run) return;
      if (exc.status === 401) this.unauthorized(run);
      else this.hooks.onState(this.state, `could not read the instances: ${exc.message}`);
    } finally {
      run.buffer = null;
    }
    if (run.again) this.snapshot(run);
  }

  announceDiff(before) {
    for (const [id, inst] of this.instances) {
      const old = before.get(id);
      if (!old) this.hooks.onNews(`${id} (${inst.name}) registered, ${inst.status}`);
      else if (old.status !== inst.status) this.hooks.onNews(`${id} (${inst.name}) is now ${inst.status}`);
    }
    for (const [id, inst] of before) {
      if (!this.instances.has(id)) this.hooks.onNews(`${id} (${inst.name}) is gone`);
    }
  }
}
