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

/**
 * ``visibleRange`` for rows of different heights: ``offsets[i]`` is row i's top, ``offsets[count]``
 * the total height (found by binary search, so 1,000 rows cost ~10 comparisons).
 */
export function rangeByOffsets(
  offsets: readonly number[],
  scrollTop: number,
  viewportHeight: number,
  overscan = 8
): IRange {
  const count = offsets.length - 1;
  if (count <= 0) {
    return { start: 0, end: 0 };
  }
  const rowAt = (y: number): number => {
    let lo = 0;
    let hi = count - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (offsets[mid] <= y) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    return lo;
  };
  const top = Math.max(0, scrollTop);
  const first = rowAt(top);
  const last = rowAt(top + Math.max(0, viewportHeight));
  return { start: Math.max(0, first - overscan), end: Math.min(count, last + 1 + overscan) };
}
