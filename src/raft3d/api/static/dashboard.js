// The farm dashboard: reads the farm and the cluster, redraws on every committed change, and
// sends the forms and status buttons to the API. All text from the API goes in via
// textContent, never as markup.
"use strict";

(() => {
  const { ApiError, Members, StreamFeed } = window.Raft3D;

  // SPEC §3 rule 3, as buttons: [target status, label].
  const TRANSITIONS = {
    Queued: [["running", "Start"], ["cancelled", "Cancel"]],
    Running: [["done", "Mark done"], ["cancelled", "Cancel"]],
    Done: [],
    Cancelled: [],
  };
  const CLUSTER_POLL_MS = 1000;
  const RETRY_MS = 1000;

  const $ = (id) => document.getElementById(id);
  const members = new Members(window.location.origin, (url) => showConnection(url));
  let connectedNode = null;
  const nodeNames = new Map(); // url -> node id, remembered for members that stop answering
  let refreshing = null;
  let refreshAgain = false;
  let retryTimer = null;
  let connected = false; // the cluster panel and change feed are running
  let feed = null; // the change feed (one at a time)

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "width") node.style.width = value; // CSSOM: allowed by the page's CSP
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function showConnection(url, problem) {
    const line = $("connection");
    line.classList.toggle("bad", Boolean(problem));
    const who = connectedNode ? `node ${connectedNode} at ${url}` : url;
    line.textContent = problem ? `${problem} (trying ${who})` : `Live: connected to ${who}`;
  }

  // -- the farm ---------------------------------------------------------------------------

  async function refresh() {
    // One refresh at a time; changes arriving meanwhile ask for one more afterwards.
    if (refreshing) {
      refreshAgain = true;
      return refreshing;
    }
    refreshing = (async () => {
      do {
        refreshAgain = false;
        try {
          const [printers, rolls, jobs] = await Promise.all([
            members.get("/api/v1/printers"),
            members.get("/api/v1/filaments"),
            members.get("/api/v1/print_jobs"),
          ]);
          drawPrinters(printers, jobs);
          drawRolls(rolls);
          drawJobs(jobs);
          drawChoices(printers, rolls);
          showConnection(members.current);
        } catch (error) {
          if (error instanceof ApiError && error.status === 401) {
            askForToken(error);
            break;
          }
          showConnection(members.current, `Cannot read the farm: ${error.message}`);
          // E.g. no quorum during an election: try again soon even if nothing else changes.
          clearTimeout(retryTimer);
          retryTimer = setTimeout(refresh, RETRY_MS);
        }
      } while (refreshAgain);
      refreshing = null;
    })();
    return refreshing;
  }

  function drawPrinters(printers, jobs) {
    const list = $("printer-list");
    list.replaceChildren();
    for (const printer of printers) {
      const mine = jobs.filter((job) => job.printer_id === printer.id);
      const running = mine.find((job) => job.status === "Running");
      const queued = mine.filter((job) => job.status === "Queued").length;
      const state = running ? `Printing ${running.filepath} (${running.id})` : "Idle";
      list.append(
        el("li", { class: "card", "data-printer": printer.id },
          el("strong", { text: printer.id }),
          el("span", { class: "muted", text: ` ${printer.company} ${printer.model}` }),
          el("div", { class: running ? "now running" : "now", text: state }),
          el("div", { class: "muted", text: `${queued} queued` }))
      );
    }
    if (printers.length === 0) list.append(el("li", { class: "empty", text: "No printers yet." }));
  }

  function drawRolls(rolls) {
    const list = $("roll-list");
    list.replaceChildren();
    for (const roll of rolls) {
      const total = roll.total_weight_in_grams;
      const remaining = roll.remaining_weight_in_grams;
      const available = roll.available_weight_in_grams;
      const pct = (grams) => `${total ? (100 * grams) / total : 0}%`;
      const bar = el("div", {
        class: "bar",
        role: "img",
        "aria-label": `${available} g available and ${remaining - available} g reserved of ` +
          `${remaining} g remaining; ${total} g when full`,
      },
      el("span", { class: "available", width: pct(available) }),
      el("span", { class: "reserved", width: pct(remaining - available) }));
      list.append(
        el("li", { class: "card", "data-roll": roll.id },
          el("strong", { text: roll.id }),
          el("span", { class: "muted", text: ` ${roll.type} · ${roll.color}` }),
          bar,
          el("div", { class: "grams" },
            el("span", { class: "available-text", text: `${available} g available` }),
            el("span", { class: "reserved-text", text: ` · ${remaining - available} g reserved` }),
            el("span", { class: "muted", text: ` · ${remaining} / ${total} g remaining` })))
      );
    }
    if (rolls.length === 0) list.append(el("li", { class: "empty", text: "No rolls yet." }));
  }

  function drawJobs(jobs) {
    const rows = $("job-rows");
    rows.replaceChildren();
    for (const job of jobs) {
      const actions = el("td", { class: "actions" });
      for (const [target, label] of TRANSITIONS[job.status] || []) {
        const button = el("button", {
          type: "button",
          "aria-label": `${label} job ${job.id}`,
          text: label,
        });
        button.addEventListener("click", () => changeStatus(job.id, target, button));
        actions.append(button);
      }
      rows.append(
        el("tr", { "data-job": job.id },
          el("th", { scope: "row", text: job.id }),
          el("td", { text: job.filepath }),
          el("td", { text: job.printer_id }),
          el("td", { text: job.filament_id }),
          el("td", { text: `${job.print_weight_in_grams} g` }),
          el("td", {}, el("span", { class: `status ${job.status}`, text: job.status })),
          actions)
      );
    }
    if (jobs.length === 0) {
      rows.append(el("tr", {}, el("td", { colspan: "7", class: "empty", text: "No jobs yet." })));
    }
  }

  function drawChoices(printers, rolls) {
    fillSelect($("job-printer"), printers.map((p) => [p.id, `${p.id} (${p.company} ${p.model})`]));
    fillSelect($("job-roll"), rolls.map((r) => [
      r.id, `${r.id} (${r.type} ${r.color}, ${r.available_weight_in_grams} g free)`,
    ]));
  }

  function fillSelect(select, options) {
    const chosen = select.value;
    select.replaceChildren(...options.map(([value, label]) => el("option", { value, text: label })));
    if (options.some(([value]) => value === chosen)) select.value = chosen;
  }

  async function changeStatus(jobId, target, button) {
    const problem = $("job-action-error");
    problem.textContent = "";
    button.disabled = true;
    try {
      await members.send("POST", `/api/v1/print_jobs/${encodeURIComponent(jobId)}/status`,
        { status: target });
    } catch (error) {
      problem.textContent = `Job ${jobId}: ${error.message}`;
      button.disabled = false;
    }
    refresh();
  }

  // -- forms ------------------------------------------------------------------------------

  function formBody(form) {
    const body = {};
    for (const input of form.querySelectorAll("input, select")) {
      const value = input.value.trim();
      if (value === "") continue; // omitted: optional fields take their default, required
      // ones are refused by the API, which says which field is missing.
      body[input.name] = input.hasAttribute("data-int") && /^-?\d+$/.test(value)
        ? Number(value) : value;
    }
    return body;
  }

  function showFormError(form, error) {
    const box = form.querySelector(".form-error");
    box.replaceChildren(el("p", { text: error.message }));
    for (const input of form.querySelectorAll("input, select")) input.removeAttribute("aria-invalid");
    const details = error instanceof ApiError ? error.details : {};
    const list = el("ul");
    for (const [field, messages] of Object.entries(details)) {
      if (!Array.isArray(messages)) continue; // facts about a refusal, not about a field
      const input = form.querySelector(`[name="${CSS.escape(field)}"]`);
      if (input) input.setAttribute("aria-invalid", "true");
      const label = input ? form.querySelector(`label[for="${input.id}"]`) : null;
      const name = label ? label.firstChild.textContent.trim() : field;
      list.append(el("li", { text: `${name}: ${messages.join(" ")}` }));
    }
    if (list.children.length) box.append(list);
  }

  function wireForm(formId, path) {
    const form = $(formId);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const box = form.querySelector(".form-error");
      box.replaceChildren();
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        await members.send("POST", path, formBody(form));
        for (const input of form.querySelectorAll("input")) {
          input.value = "";
          input.removeAttribute("aria-invalid");
        }
        refresh();
      } catch (error) {
        showFormError(form, error);
      } finally {
        button.disabled = false;
      }
    });
  }

  // -- the cluster ------------------------------------------------------------------------

  async function pollCluster() {
    const answers = await Promise.all(members.urls.map(async (url) => {
      try {
        return [url, await members.fetchFrom(url, "/cluster/status", {}, 1500)];
      } catch (error) {
        return [url, null];
      }
    }));
    for (const [, status] of answers) if (status) members.learn(status);
    const current = answers.find(([url]) => url === members.current);
    if (current && current[1]) connectedNode = current[1].node_id;
    drawCluster(answers);
    setTimeout(pollCluster, CLUSTER_POLL_MS);
  }

  function drawCluster(answers) {
    const rows = $("cluster-rows");
    rows.replaceChildren();
    const leaders = answers.filter(([, status]) => status && status.role === "leader");
    $("cluster-leader").textContent = leaders.length
      ? `Leader: ${leaders.map(([, s]) => `${s.node_id} (term ${s.term})`).join(", ")}`
      : "No leader right now: writes wait for an election.";
    for (const [url, status] of answers) {
      if (status) nodeNames.set(url, status.node_id);
      if (!status) {
        rows.append(el("tr", { class: "down", "data-node-url": url },
          el("th", { scope: "row", text: nodeNames.get(url) || "?" }), el("td", { text: url }),
          el("td", {}, el("span", { class: "role down", text: "unreachable" })),
          el("td"), el("td"), el("td")));
        continue;
      }
      const here = url === members.current ? " (this page's node)" : "";
      rows.append(el("tr", { class: status.role, "data-node": status.node_id },
        el("th", { scope: "row", text: status.node_id + here }),
        el("td", { text: url }),
        el("td", {}, el("span", { class: `role ${status.role}`, text: status.role })),
        el("td", { text: String(status.term) }),
        el("td", { text: String(status.applied_index) }),
        el("td", { text: String(status.commit_index) })));
    }
  }

  // -- start ------------------------------------------------------------------------------

  function askForToken(error) {
    const form = $("token-form");
    form.hidden = false;
    showConnection(members.current, `This cluster needs an access token (${error.message})`);
    $("token").focus();
  }

  async function connect() {
    let status;
    try {
      status = await members.get("/cluster/status");
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return askForToken(error);
      showConnection(members.current, `Cannot reach the node: ${error.message}`);
      status = { peers: [], applied_index: 0 };
    }
    connected = true;
    members.learn(status);
    connectedNode = status.node_id || null;
    $("token-form").hidden = true;
    pollCluster();
    await refresh();
    if (feed) feed.stop();
    feed = new StreamFeed(members, () => refresh(), (error) => {
      if (error instanceof ApiError && error.status === 401) askForToken(error);
      else showConnection(members.current, `Lost the change feed: ${error.message}`);
    });
    feed.start(status.applied_index);
  }

  function start() {
    wireForm("printer-form", "/api/v1/printers");
    wireForm("roll-form", "/api/v1/filaments");
    wireForm("job-form", "/api/v1/print_jobs");
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      members.setToken($("token").value.trim());
      $("token").value = "";
      $("token-form").hidden = true;
      if (connected) refresh();
      else connect();
    });
    connect();
  }

  start();
})();
