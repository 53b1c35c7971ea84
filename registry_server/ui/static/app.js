// Wiring: tokens (kept in sessionStorage), filters, the live instance set, the tables and the clock.

import { ApiError, RegistryApi } from "./api.js";
import { byServiceThenId, countsByService, filterInstances } from "./format.js";
import { LiveInstances } from "./live.js";
import { renderInstances, renderServices, tickInstances } from "./view.js";

const ADMIN_KEY = "registry.adminToken";
const READ_KEY = "registry.readToken";
const $ = (id) => document.getElementById(id);

const tokens = {
  admin: () => sessionStorage.getItem(ADMIN_KEY) || "",
  read: () => sessionStorage.getItem(READ_KEY) || "",
};
const api = new RegistryApi(new URL("..", document.baseURI), () => tokens.admin() || tokens.read());
const filters = { name: "", status: "" };

const live = new LiveInstances(api, {
  onChange: render,
  onState: showState,
  onNews: announce,
});

function render() {
  const all = live.list();
  renderServices($("services-body"), countsByService(all), pickService);
  const loading = !live.loaded;
  $("services-empty").hidden = all.length > 0;
  $("services-empty").textContent = loading ? "Loading…" : "No services registered.";
  const shown = filterInstances(all, filters).sort(byServiceThenId);
  renderInstances($("instances-body"), shown, api.now());
  $("instances-empty").hidden = shown.length > 0;
  $("instances-empty").textContent = loading ? "Loading…"
    : all.length ? "No instance matches the filters." : "No instances registered.";
  $("shown-count").textContent = `Showing ${shown.length} of ${all.length} instance${all.length === 1 ? "" : "s"}.`;
}

const STATE_TEXT = {
  connecting: "Connecting…",
  live: "Live: following the change stream",
  polling: "Polling every 2 s",
  unauthorized: "Token needed to read",
};

function showState(state, detail) {
  const node = $("connection");
  node.dataset.state = state;
  if (state === "unauthorized" && (tokens.read() || tokens.admin())) detail = "the token given was refused";
  node.textContent = detail && state !== "live" ? `${STATE_TEXT[state]} (${detail})` : STATE_TEXT[state];
  $("read-form").hidden = state !== "unauthorized" && !tokens.read();
}

let pending = [];
let flushTimer = null;
/** Screen readers hear a short summary of changes, at most once a second, not every row update. */
function announce(text) {
  pending.push(text);
  if (flushTimer) return;
  flushTimer = setTimeout(() => {
    const lines = pending.length > 3 ? [`${pending.length} changes, the latest: ${pending.at(-1)}`] : pending;
    $("announcer").textContent = lines.join(". ");
    pending = [];
    flushTimer = null;
  }, 1000);
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function pickService(name) {
  $("filter-name").value = name;
  filters.name = name;
  render();
  $("filter-name").focus();
}

function showAdmin() {
  const on = Boolean(tokens.admin());
  document.body.classList.toggle("admin", on);
  $("admin-state").textContent = on
    ? "Admin actions are on for this tab (the token is kept until the tab closes)."
    : "Admin actions are off: enter the admin token to deregister instances or change their status.";
  $("admin-forget").hidden = !on;
  $("admin-form").hidden = on;
}

function useToken(key, input) {
  const value = input.value.trim();
  input.value = "";
  if (value) sessionStorage.setItem(key, value);
  else sessionStorage.removeItem(key);
  showError("");
  showAdmin();
  live.start(); // reads may now be allowed
}

async function act(button) {
  const { action, id } = button.dataset;
  const row = button.closest("tr");
  try {
    if (action === "deregister") {
      if (!window.confirm(`Deregister ${id}? Its service will stop receiving traffic through the registry.`)) return;
      await api.deregister(id);
    } else if (action === "status") {
      const status = row.querySelector("select[data-role=status]").value;
      await api.setStatus(id, status);
    }
    showError("");
  } catch (exc) {
    const hint = exc instanceof ApiError && (exc.status === 401 || exc.status === 403)
      ? " Is this the admin token (REGISTRY_ADMIN_TOKEN)?" : "";
    showError(`Could not ${action === "status" ? "change the status of" : "deregister"} ${id}: ${exc.message}.${hint}`);
  }
}

function init() {
  $("admin-form").addEventListener("submit", (e) => { e.preventDefault(); useToken(ADMIN_KEY, $("admin-token")); });
  $("read-form").addEventListener("submit", (e) => { e.preventDefault(); useToken(READ_KEY, $("read-token")); });
  $("admin-forget").addEventListener("click", () => {
    sessionStorage.removeItem(ADMIN_KEY);
    showAdmin();
    live.start();
    $("admin-token").focus();
  });
  $("filters").addEventListener("submit", (e) => e.preventDefault());
  $("filter-name").addEventListener("input", (e) => { filters.name = e.target.value; render(); });
  $("filter-status").addEventListener("change", (e) => { filters.status = e.target.value; render(); });
  $("instances-body").addEventListener("click", (e) => {
    const button = e.target.closest("button[data-action]");
    if (button && tokens.admin()) act(button);
  });
  showAdmin();
  render();
  live.start();
  setInterval(() => tickInstances($("instances-body"), api.now()), 1000);
}

init();
