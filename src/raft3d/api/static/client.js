// Talking to a Raft3D cluster from a browser: any member will do, and when the one in use dies
// the next one takes over. Two pieces, used by the dashboard:
//
//   Members     knows the cluster's HTTP addresses (learned from /cluster/status) and sends
//               each request to the current one, moving on to the next when it cannot answer.
//   StreamFeed  tells its listener each time the cluster commits something, from the node's
//               Server-Sent Events stream (GET /api/v1/events/stream), read with fetch so
//               that the bearer token travels in a header. When the stream breaks it resumes
//               from the last event id on the next member. `PollingFeed` (GET
//               /api/v1/events every 0.7 s) has the same start()/stop() and onChange(index).
"use strict";

class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "http_" + status;
    this.details = error.details || {};
  }
}

const TOKEN_KEY = "raft3d-token";

class Members {
  constructor(origin, onSwitch) {
    this.urls = [origin];
    this.current = origin;
    this.onSwitch = onSwitch || (() => {});
    // With [auth] on, every call carries the user's bearer token (kept for this tab only).
    this.token = window.sessionStorage.getItem(TOKEN_KEY) || "";
  }

  setToken(token) {
    this.token = token;
    window.sessionStorage.setItem(TOKEN_KEY, token);
  }

  // Adds every member named in a /cluster/status answer (their advertised HTTP addresses).
  learn(status) {
    for (const peer of status.peers || []) {
      if (peer.http_addr && !this.urls.includes(peer.http_addr)) this.urls.push(peer.http_addr);
    }
  }

  async fetchFrom(base, path, options = {}, timeoutMs = 4000) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      const headers = { ...(options.headers || {}) };
      if (this.token) headers.Authorization = `Bearer ${this.token}`;
      const response = await fetch(base + path, { ...options, headers, signal: controller.signal });
      const text = await response.text();
      const body = text ? JSON.parse(text) : null;
      if (!response.ok) throw new ApiError(response.status, body);
      return body;
    } finally {
      clearTimeout(timer);
    }
  }

  // A read from the current member; when it cannot answer (no connection, a timeout, a 503)
  // the next member is asked, and becomes the current one if it answers.
  async request(path, options = {}) {
    let lastError = null;
    const start = this.urls.indexOf(this.current);
    for (let i = 0; i < this.urls.length; i++) {
      const base = this.urls[(start + i) % this.urls.length];
      try {
        const body = await this.fetchFrom(base, path, options);
        if (base !== this.current) {
          this.current = base;
          this.onSwitch(base);
        }
        return body;
      } catch (error) {
        // An answer is final unless the member cannot serve at all right now (stopping,
        // halted, cut off from the quorum): then another member may.
        if (error instanceof ApiError && error.status !== 503) throw error;
        lastError = error;
      }
    }
    throw lastError || new Error("no member answered");
  }

  get(path) {
    return this.request(path);
  }

  send(method, path, body) {
    // Writes are not retried on another node: a write the dead node took may have committed.
    return this.fetchFrom(this.current, path, {
      method,
      headers: { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }
}

class PollingFeed {
  // onChange(index) is called when entries up to `index` are committed and applied.
  constructor(members, onChange, onError, intervalMs = 700) {
    this.members = members;
    this.onChange = onChange;
    this.onError = onError || (() => {});
    this.intervalMs = intervalMs;
    this.after = null;
    this.timer = null;
  }

  start(fromIndex) {
    this.after = fromIndex;
    this.schedule(0);
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
  }

  schedule(delay) {
    this.timer = setTimeout(() => this.poll(), delay);
  }

  async poll() {
    try {
      const page = await this.members.get(
        `/api/v1/events?after=${this.after}&limit=1000&consistency=local`
      );
      if (page.events.length > 0) {
        this.after = page.events[page.events.length - 1].index;
        this.onChange(this.after);
      }
    } catch (error) {
      if (error instanceof ApiError && error.status === 410) {
        // Compacted away on this member: what we missed is in the state, so re-read it.
        this.after = error.details.first_index ? error.details.first_index - 1 : 0;
        this.onChange(this.after);
      } else {
        this.onError(error);
      }
    }
    if (this.timer !== null) this.schedule(this.intervalMs);
  }
}

class StreamFeed {
  // onChange(index) is called when entries up to `index` are committed and applied; bursts
  // are coalesced so that a busy cluster costs the page at most one redraw per `coalesceMs`.
  constructor(members, onChange, onError, coalesceMs = 250) {
    this.members = members;
    this.onChange = onChange;
    this.onError = onError || (() => {});
    this.coalesceMs = coalesceMs;
    this.after = 0;
    this.controller = null;
    this.pending = null;
    this.running = false;
    this.failures = 0;
  }

  start(fromIndex) {
    this.after = fromIndex;
    this.running = true;
    this.open();
  }

  stop() {
    this.running = false;
    if (this.controller) this.controller.abort();
    clearTimeout(this.pending);
  }

  changed(index) {
    this.after = index;
    if (this.pending !== null) return;
    this.pending = setTimeout(() => {
      this.pending = null;
      this.onChange(this.after);
    }, this.coalesceMs);
  }

  async open() {
    const base = this.members.current;
    this.controller = new AbortController();
    try {
      const headers = { Accept: "text/event-stream" };
      if (this.members.token) headers.Authorization = `Bearer ${this.members.token}`;
      const response = await fetch(`${base}/api/v1/events/stream?after=${this.after}`, {
        headers,
        signal: this.controller.signal,
      });
      if (!response.ok) {
        const text = await response.text();
        throw new ApiError(response.status, text ? JSON.parse(text) : null);
      }
      if (this.failures > 0) {
        // Back after a break: redraw from the state, which also says the page is live again.
        this.failures = 0;
        this.onChange(this.after);
      }
      await this.read(response.body.getReader());
      throw new Error("the stream ended");
    } catch (error) {
      if (!this.running) return;
      if (error instanceof ApiError && error.status === 410) {
        // Compacted away on this member: what we missed is in the state, so re-read it.
        this.after = error.details.first_index ? error.details.first_index - 1 : 0;
        this.onChange(this.after);
      } else {
        this.failures += 1;
        this.onError(error);
        // Without a valid token every member says the same: retry here once one is given.
        if (!(error instanceof ApiError && error.status === 401)) this.nextMember(base);
      }
      const delay = Math.min(5000, 250 * 2 ** Math.min(this.failures, 5));
      setTimeout(() => this.running && this.open(), this.failures ? delay : 0);
    }
  }

  nextMember(failed) {
    const urls = this.members.urls;
    if (urls.length > 1 && this.members.current === failed) {
      this.members.current = urls[(urls.indexOf(failed) + 1) % urls.length];
      this.members.onSwitch(this.members.current);
    }
  }

  // Server-Sent Events framing: blank-line separated blocks of "field: value" lines.
  async read(reader) {
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const line of block.split("\n")) {
          if (line.startsWith("id:")) {
            const index = Number(line.slice(3).trim());
            if (Number.isInteger(index) && index > this.after) this.changed(index);
          }
        }
      }
    }
  }
}

window.Raft3D = { ApiError, Members, PollingFeed, StreamFeed };
