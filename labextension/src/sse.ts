/**
 * Incremental parser for server-sent events read from a fetch() body.
 *
 * EventSource cannot send JupyterLab's Authorization header, so the log viewer reads the stream with
 * fetch and feeds the text here as it arrives; events may be split across reads at any byte.
 */

export interface ISSEvent {
  event: string;
  data: string;
  id: string | null;
}

export class SSEParser {
  private buffer = '';

  /** Parse ``text`` appended to what came before; returns every event completed by it. */
  feed(text: string): ISSEvent[] {
    this.buffer += text.replace(/\r\n?/g, '\n');
    const events: ISSEvent[] = [];
    let end: number;
    while ((end = this.buffer.indexOf('\n\n')) >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const parsed = parseBlock(block);
      if (parsed) {
        events.push(parsed);
      }
    }
    return events;
  }
}

function parseBlock(block: string): ISSEvent | null {
  let event = 'message';
  let id: string | null = null;
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (!line || line.startsWith(':')) {
      continue; // comments are keep-alives
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) {
      value = value.slice(1);
    }
    if (field === 'event') {
      event = value;
    } else if (field === 'data') {
      data.push(value);
    } else if (field === 'id') {
      id = value;
    }
  }
  if (!data.length) {
    return null;
  }
  return { event, data: data.join('\n'), id };
}
