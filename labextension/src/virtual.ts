/**
 * Windowing for long lists: only the rows in view (plus a margin) exist in the DOM, so 1,000 jobs or
 * 100,000 log lines cost the same to render as a screenful.
 */

export interface IRange {
  start: number; // first row index to render
  end: number; // one past the last
}

export function visibleRange(
  scrollTop: number,
  viewportHeight: number,
  rowHeight: number,
  count: number,
  overscan = 8
): IRange {
  if (count <= 0 || rowHeight <= 0) {
    return { start: 0, end: 0 };
  }
  const first = Math.floor(Math.max(0, scrollTop) / rowHeight);
  const shown = Math.ceil(Math.max(0, viewportHeight) / rowHeight) + 1;
  const start = Math.max(0, Math.min(first, count - 1) - overscan);
  const end = Math.min(count, first + shown + overscan);
  return { start, end: Math.max(start, end) };
}

/** Whether a scroll container is (close to) its bottom, i.e. the user is following the tail. */
export function atBottom(scrollTop: number, viewportHeight: number, contentHeight: number, slack = 4): boolean {
  return scrollTop + viewportHeight >= contentHeight - slack;
}
