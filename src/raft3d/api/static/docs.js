// The API reference: renders this node's /openapi.json as a page. No markup from the
// document is trusted: everything goes in via textContent.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  const refName = (ref) => ref.split("/").pop();

  function typeOf(schema) {
    if (!schema) return "";
    if (schema.$ref) {
      const name = refName(schema.$ref);
      return el("a", { href: `#schema-${name}`, text: name });
    }
    if (schema.type === "array") {
      const inner = typeOf(schema.items);
      const span = el("span", {}, "array of ");
      span.append(inner);
      return span;
    }
    if (schema.oneOf) return schema.oneOf.map((s) => s.type).join(" or ");
    return (schema.type || "any") + (schema.nullable ? " or null" : "");
  }

  function rules(schema) {
    const parts = [];
    if (schema.enum) parts.push(`one of ${schema.enum.join(", ")}`);
    if (schema.minimum !== undefined) parts.push(`≥ ${schema.minimum}`);
    if (schema.maximum !== undefined) parts.push(`≤ ${schema.maximum}`);
    for (const s of schema.oneOf || [schema]) {
      if (s.maxLength !== undefined) parts.push(`${s.minLength || 0}–${s.maxLength} characters`);
    }
    if (schema.description) parts.push(schema.description);
    return parts.join("; ");
  }

  function fieldTable(rows) {
    const body = el("tbody");
    for (const [name, where, schema, required] of rows) {
      const type = el("td");
      type.append(typeOf(schema));
      body.append(el("tr", {},
        el("th", { scope: "row" }, el("code", { text: name })),
        el("td", { text: where }), type,
        el("td", { text: required ? "required" : "optional" }),
        el("td", { text: rules(schema) })));
    }
    const head = el("thead", {}, el("tr", {},
      ...["Name", "In", "Type", "", "Rules"].map((t) => el("th", { scope: "col", text: t }))));
    return el("table", {}, head, body);
  }

  function operation(path, method, op) {
    const id = op.operationId;
    const box = el("section", { class: "op", id, "aria-labelledby": `${id}-title` });
    box.append(el("h3", { id: `${id}-title` },
      el("span", { class: `method ${method}`, text: method.toUpperCase() }),
      el("span", { class: "path", text: path }),
      el("span", { class: "muted", text: op.summary })));
    const inputs = (op.parameters || []).map((p) => [p.name, p.in, p.schema, p.required]);
    const body = op.requestBody && op.requestBody.content["application/json"];
    if (body) {
      inputs.push(["(body)", "body", body.schema, op.requestBody.required]);
    }
    if (inputs.length) box.append(fieldTable(inputs));
    if (body && body.example) {
      box.append(el("p", { class: "muted", text: "Example body:" }),
        el("pre", {}, el("code", { text: JSON.stringify(body.example) })));
    }
    const answers = el("ul");
    for (const [status, answer] of Object.entries(op.responses)) {
      const [type, content] = Object.entries(answer.content || {})[0] || ["", {}];
      const item = el("li", {}, el("strong", { text: status }), ` ${answer.description} `);
      if (content.schema) {
        const kind = el("span", { class: "muted" }, `(${type}: `);
        kind.append(typeOf(content.schema), ")");
        item.append(kind);
      }
      answers.append(item);
    }
    box.append(answers);
    return box;
  }

  function schemaSection(name, schema) {
    const required = new Set(schema.required || []);
    const rows = Object.entries(schema.properties || {})
      .map(([field, s]) => [field, "", s, required.has(field)]);
    const more = schema.additionalProperties === false
      ? "No other fields are accepted." : "Other fields may be added later: ignore them.";
    return el("section", { class: "op schema", id: `schema-${name}` },
      el("h3", { text: name }), fieldTable(rows), el("p", { class: "muted", text: more }));
  }

  async function start() {
    const response = await fetch("/openapi.json");
    const doc = await response.json();
    $("intro").textContent = `${doc.info.title} ${doc.info.version} (OpenAPI ${doc.openapi}). ` +
      doc.info.description;
    const toc = $("toc");
    const ops = $("operations");
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        toc.append(el("li", {}, el("a", { href: `#${op.operationId}` },
          el("code", { text: `${method.toUpperCase()} ${path}` })), ` ${op.summary}`));
        ops.append(operation(path, method, op));
      }
    }
    for (const [name, schema] of Object.entries(doc.components.schemas)) {
      $("schemas").append(schemaSection(name, schema));
    }
  }

  start().catch((error) => { $("intro").textContent = `Could not load the document: ${error}`; });
})();
