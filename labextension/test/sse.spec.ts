import { SSEParser } from '../src/sse';

describe('SSEParser', () => {
  it('parses events split across reads at any byte', () => {
    const text =
      ': stream open\n\nid: 0:7\nevent: log\ndata: {"rank":0,"text":"a\\n","offset":7}\n\nevent: end\ndata: {"state":"Succeeded"}\n\n';
    for (let cut = 0; cut <= text.length; cut++) {
      const p = new SSEParser();
      const events = [...p.feed(text.slice(0, cut)), ...p.feed(text.slice(cut))];
      expect(events.map(e => e.event)).toEqual(['log', 'end']);
      expect(events[0].id).toBe('0:7');
      expect(JSON.parse(events[0].data).offset).toBe(7);
    }
  });

  it('skips keep-alive comments and joins multi-line data', () => {
    const p = new SSEParser();
    expect(p.feed(': keep-alive\n\n')).toEqual([]);
    expect(p.feed('data: a\r\ndata: b\r\n\r\n')).toEqual([{ event: 'message', data: 'a\nb', id: null }]);
  });
});
