// The registry's REST API as the console uses it: JSON in and out, bearer tokens, errors as ApiError.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class RegistryApi {
  /**
   * @param {URL} base the registry's root URL (the console lives at base + "ui/")
   * @param {() => string} token the bearer token to send now ("" for none)
   */
  constructor(base, token) {
    this.base = base;
    this.token = token;
    this.skewMs = 0; // server clock minus ours, when they differ by more than the Date header can tell
  }

  url(path) {
    return new URL(path.replace(/^\//, ""), this.base).toString();
  }

  headers(extra = {}) {
    const token = this.token();
    return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
  }

  async request(method, path, body) {
    const init = { method, headers: this.headers({ Accept: "application/json" }), cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(this.url(path), init);
    } catch (exc) {
      throw new ApiError(0, "unreachable", `the registry cannot be reached (${exc.message})`);
    }
    this.noteClock(resp);
    if (resp.status === 204) return null;
    const payload = await resp.json().catch(() => null);
    if (!resp.ok) {
      const error = (payload && payload.error) || {};
      throw new ApiError(resp.status, error.code || "http_error", error.message || `HTTP ${resp.status}`);
    }
    return payload;
  }

  noteClock(resp) {
    const date = Date.parse(resp.headers.get("date") || "");
    if (Number.isNaN(date)) return;
    const skew = date + 500 - Date.now(); // Date has whole seconds: +500 ms centres the estimate
    this.skewMs = Math.abs(skew) > 2000 ? skew : 0;
  }

  /** Now on the registry's clock, in ms since the epoch. */
  now() {
    return Date.now() + this.skewMs;
  }

  instances() {
    return this.request("GET", "/instances").then((r) => r.instances);
  }

  setStatus(id, status) {
    return this.request("PUT", `/instances/${encodeURIComponent(id)}/heartbeat`, { status });
  }

  deregister(id) {
    return this.request("DELETE", `/instances/${encodeURIComponent(id)}`);
  }
}
