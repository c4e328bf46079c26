import { atBottom, visibleRange } from '../src/virtual';
import { LogBuffer } from '../src/logbuffer';

describe('visibleRange', () => {
  it('covers the viewport plus overscan and stays in bounds', () => {
    expect(visibleRange(0, 170, 17, 100000, 5)).toEqual({ start: 0, end: 16 });
    expect(visibleRange(17 * 500, 170, 17, 100000, 5)).toEqual({ start: 495, end: 516 });
    expect(visibleRange(17 * 99995, 170, 17, 100000, 5)).toEqual({ start: 99990, end: 100000 });
    expect(visibleRange(0, 500, 17, 0)).toEqual({ start: 0, end: 0 });
  });

  it('renders a screenful whatever the list length', () => {
    const r = visibleRange(52 * 400, 600, 52, 1000);
    expect(r.end - r.start).toBeLessThan(40);
  });

  it('knows when the user follows the tail', () => {
    expect(atBottom(830, 170, 1000)).toBe(true);
    expect(atBottom(500, 170, 1000)).toBe(false);
  });
});

describe('LogBuffer', () => {
  it('joins chunks that end mid-line and shows the unfinished line', () => {
    const b = new LogBuffer();
    b.append('epoch 1/3 lo');
    expect(b.length).toBe(1);
    expect(b.line(0)).toBe('epoch 1/3 lo');
    b.append('ss 2.0\nepoch 2/3\n');
    expect(b.length).toBe(2);
    expect([b.line(0), b.line(1)]).toEqual(['epoch 1/3 loss 2.0', 'epoch 2/3']);
  });

  it('drops the oldest lines in bulk beyond its limit', () => {
    const b = new LogBuffer(100);
    for (let i = 0; i < 250; i++) {
      b.append(`line ${i}\n`);
    }
    expect(b.length).toBeLessThanOrEqual(100);
    expect(b.line(b.length - 1)).toBe('line 249');
    expect(b.dropped + b.length).toBe(250);
  });
});
