import { LogView } from '../src/logview';

describe('LogView', () => {
  it('holds 100,000 lines with a screenful of DOM and shows the tail', () => {
    const view = new LogView();
    document.body.appendChild(view.node);
    for (let b = 0; b < 1000; b++) {
      let chunk = '';
      for (let i = 0; i < 100; i++) {
        chunk += `step ${b * 100 + i}\n`;
      }
      view.append(chunk);
    }
    view.render();
    expect(view.lineCount).toBe(100000);
    const lines = view.node.querySelectorAll('.dlw-LogLine');
    expect(lines.length).toBeLessThan(100);
    expect(lines[lines.length - 1].textContent).toBe('step 99999');
  });

  it('the naive baseline puts one element per line', () => {
    const view = new LogView({ virtualize: false });
    document.body.appendChild(view.node);
    view.append('a\nb\nc\n');
    expect(view.node.querySelectorAll('.dlw-LogLine').length).toBe(3);
  });
});
