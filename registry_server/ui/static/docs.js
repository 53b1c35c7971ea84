// The interactive API page (/docs): every operation of /openapi.json, each with a form that sends it.

const $ = (id) => document.getElementById(id);
const METHODS = ["get", "post", "put", "delete"];

function el(tag, { dataset = {}, ...props } = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  Object.assign(node.dataset, dataset);
  for (const child of children) node.append(child);
  return node;
}

function resolve(doc, schema) {
  let current = schema || {};
  while (current.$ref) current = current.$ref.split("/").slice(1).reduce((node, key) => node[key], doc);
  return current;
}

// A starting body: the required fields of the schema, with their example or a value of their type.
function sampleBody(doc, schema) {
  const resolved = resolve(doc, schema);
  const body = {};
  for (const name of resolved.required || []) {
    const field = resolve(doc, (resolved.properties || {})[name]);
    const type = field.type || (field.anyOf || [{}])[0].type;
    body[name] = field.example ?? (type === "integer" ? 8080 : type === "object" ? {} : type === "array" ? [] : name);
  }
  return JSON.stringify(body, null, 2);
}

function operationForm(doc, path, method, op) {
  const id = `${method}-${path}`.replace(/[^A-Za-z0-9]+/g, "-");
  const params = op.parameters || [];
  const fields = params.map((param) => {
    const inputId = `${id}-${param.name}`;
    return el("div", { className: "field" },
      el("label", { htmlFor: inputId, textContent: `${param.name} (${param.in}${param.required ? ", required" : ""})` }),
      el("input", { id: inputId, name: param.name, dataset: { in: param.in }, autocomplete: "off",
                    spellcheck: false, title: param.description || "" }));
  });
  const jsonBody = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
  const body = jsonBody
    ? el("textarea", { id: `${id}-body`, rows: 6, cols: 60, spellcheck: false, value: sampleBody(doc, jsonBody.schema),
                       ariaLabel: "request body (JSON)" })
    : null;
  const output = el("pre", { className: "answer", hidden: true });
  const form = el("form", { className: "filters" }, ...fields, ...(body ? [body] : []),
    el("button", { type: "submit", textContent: "Send" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    output.hidden = false;
    output.textContent = "…";
    let url = path;
    const query = new URLSearchParams();
    for (const input of form.querySelectorAll("input")) {
      if (!input.value) continue;
      if (input.dataset.in === "path") url = url.replace(`{${input.name}}`, encodeURIComponent(input.value));
      else if (input.dataset.in === "query") query.set(input.name, input.value);
    }
    const headers = { Accept: "application/json" };
    if ($("bearer").value) headers.Authorization = `Bearer ${$("bearer").value}`;
    if ($("lease").value) headers["X-Lease-Token"] = $("lease").value;
    const init = { method: method.toUpperCase(), headers, cache: "no-store" };
    if (body) {
      headers["Content-Type"] = "application/json";
      init.body = body.value;
    }
    const target = url.replace(/^\//, "") + (query.size ? `?${query}` : "");
    try {
      const resp = await fetch(new URL(target, document.baseURI), init);
      const text = await resp.text();
      let shown = text;
      try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch { /* not JSON: as it came */ }
      output.textContent = `${resp.status} ${resp.statusText}\n${shown}`;
    } catch (exc) {
      output.textContent = `the registry cannot be reached (${exc.message})`;
    }
  });
  return el("details", { className: "panel operation", id },
    el("summary", {}, el("code", { textContent: `${method.toUpperCase()} ${path}` }), ` ${op.summary || ""}`),
    ...(op.description ? [el("p", { className: "help", textContent: op.description })] : []),
    form, output);
}

async function main() {
  let doc;
  try {
    const resp = await fetch(new URL("openapi.json", document.baseURI), { cache: "no-store" });
    doc = await resp.json();
  } catch (exc) {
    $("error").textContent = `The OpenAPI document could not be read (${exc.message}).`;
    $("error").hidden = false;
    return;
  }
  document.title = `${doc.info.title} ${doc.info.version}`;
  const list = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) if (item[method]) list.push(operationForm(doc, path, method, item[method]));
  }
  $("operations").replaceChildren(...list);
}

main();
