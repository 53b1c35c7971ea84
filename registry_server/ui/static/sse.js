// Server-Sent Events over fetch. EventSource cannot send an Authorization header, so a registry that
// guards its reads (REGISTRY_READ_TOKEN) could only be watched with the token in the URL, where it ends up
// in logs and history. A fetch stream sends the header, and one code path serves open and guarded
// registries alike.

/** Incremental parser of the text/event-stream format (CR, LF or CRLF line ends; comments ignored). */
export class SseParser {
  constructor() {
    this.buffer = "";
    this.fields = { event: "", data: [], id: null };
  }

  /** Feed a chunk of text; returns the events it completed: [{event, data, id}]. */
  push(text) {
    this.buffer += text;
    const events = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (!match) break;
      // A lone CR at the very end may be the first half of a CRLF split across chunks: wait for more.
      if (match[0] === "\r" && match.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const event = this.line(line);
      if (event) events.push(event);
    }
    return events;
  }

  line(line) {
    if (line === "") {
      const { event, data, id } = this.fields;
      this.fields = { event: "", data: [], id: null };
      if (!data.length && !event) return null;
      return { event: event || "message", data: data.join("\n"), id };
    }
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const name = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "event") this.fields.event = value;
    else if (name === "data") this.fields.data.push(value);
    else if (name === "id") this.fields.id = value;
    return null;
  }
}

/**
 * Read the stream at `url` until it ends, `signal` aborts it, or it fails; `onEvent` gets each event.
 * Resolves when the server ends the stream; rejects on an HTTP error or a broken connection.
 */
export async function readEventStream(url, { headers = {}, signal, onOpen, onEvent }) {
  const resp = await fetch(url, { headers: { Accept: "text/event-stream", ...headers }, signal, cache: "no-store" });
  if (!resp.ok || !resp.body) {
    const error = new Error(`the change stream answered ${resp.status}`);
    error.status = resp.status;
    throw error;
  }
  if (onOpen) onOpen();
  const parser = new SseParser();
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    for (const event of parser.push(value)) onEvent(event);
  }
}
