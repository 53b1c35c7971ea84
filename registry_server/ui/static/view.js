// Rendering: the services table, and the instances table updated row by row (keyed by id) so that a
// focused control keeps its focus while the data around it changes. Text only: nothing from the registry
// is ever parsed as HTML.

import {
  STATUSES, formatMetadata, formatTimestamp, heartbeatAge, timeToExpiry,
} from "./format.js";

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

export function renderServices(tbody, services, onPick) {
  tbody.replaceChildren(...services.map((svc) => el("tr", {},
    el("th", { scope: "row" }, el("button", {
      type: "button", className: "link", textContent: svc.name, title: `Show only ${svc.name}`,
      onclick: () => onPick(svc.name),
    })),
    el("td", { dataset: { label: "Instances" } }, String(svc.instances)),
    ...STATUSES.map((s) => el("td", { className: svc.statuses[s] ? `count status-${s}` : "count zero",
                                      dataset: { label: s } }, String(svc.statuses[s] || 0))),
  )));
}

const COLUMNS = ["service", "id", "address", "version", "status", "metadata", "registered", "age", "expiry",
                 "actions"];
const LABELS = { service: "Service", id: "ID", address: "Address", version: "Version", status: "Status",
                 metadata: "Metadata", registered: "Registered (UTC)", age: "Heartbeat", expiry: "Expires in",
                 actions: "Actions" };

function actionsCell(id) {
  const selectId = `status-${id}`;
  const select = el("select", { id: selectId, name: "status", dataset: { role: "status" } },
    ...STATUSES.map((s) => el("option", { value: s }, s)));
  return [el("div", { className: "actions" },
    el("label", { htmlFor: selectId, className: "visually-hidden" }, `New status for ${id}`),
    select,
    el("button", { type: "button", dataset: { action: "status", id }, ariaLabel: `Set status of ${id}` }, "Set"),
    el("button", { type: "button", className: "danger", dataset: { action: "deregister", id },
                   ariaLabel: `Deregister ${id}` }, "Deregister"),
  )];
}

function newRow(inst) {
  const row = el("tr", { dataset: { id: inst.id } });
  for (const column of COLUMNS) {
    const cell = el(column === "id" ? "th" : "td", { className: `col-${column}`, dataset: { label: LABELS[column] } });
    if (column === "id") cell.scope = "row";
    if (column === "actions") cell.append(...actionsCell(inst.id));
    row.append(cell);
  }
  return row;
}

function fillRow(row, inst, now) {
  const cell = (column) => row.querySelector(`.col-${column}`);
  setText(cell("service"), inst.name);
  setText(cell("id"), inst.id);
  setText(cell("address"), `${inst.host.includes(":") ? `[${inst.host}]` : inst.host}:${inst.port}`);
  setText(cell("version"), inst.version || "–");
  const status = cell("status");
  setText(status, inst.status);
  status.className = `col-status status status-${inst.status}`;
  setText(cell("metadata"), formatMetadata(inst.metadata) || "–");
  setText(cell("registered"), formatTimestamp(inst.registered_at));
  const select = row.querySelector("select[data-role=status]");
  if (document.activeElement !== select && row.dataset.status !== inst.status) select.value = inst.status;
  row.dataset.status = inst.status;
  row.dataset.lastHeartbeat = inst.last_heartbeat;
  row.dataset.expiresAt = inst.expires_at;
  tickRow(row, now);
}

function tickRow(row, now) {
  const inst = { last_heartbeat: row.dataset.lastHeartbeat, expires_at: row.dataset.expiresAt };
  setText(row.querySelector(".col-age"), heartbeatAge(inst, now));
  const expiry = timeToExpiry(inst, now);
  setText(row.querySelector(".col-expiry"), expiry.text);
  row.classList.toggle("expired", expiry.expired);
}

/** Make `tbody` show exactly `instances`, in order, moving as few rows as possible. */
export function renderInstances(tbody, instances, now) {
  const rows = new Map([...tbody.rows].map((row) => [row.dataset.id, row]));
  const wanted = new Set(instances.map((inst) => inst.id));
  for (const [id, row] of rows) if (!wanted.has(id)) row.remove();
  instances.forEach((inst, index) => {
    const row = rows.get(inst.id) || newRow(inst);
    fillRow(row, inst, now);
    if (tbody.rows[index] !== row) tbody.insertBefore(row, tbody.rows[index] || null);
  });
}

/** Advance the heartbeat ages and times to expiry (every second, between updates). */
export function tickInstances(tbody, now) {
  for (const row of tbody.rows) tickRow(row, now);
}
