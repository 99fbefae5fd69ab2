// A small history-based router: the service answers every page path with
// the same index.html, and the view follows `location.pathname`.

import { useEffect, useState } from "preact/hooks";

const listeners = new Set<() => void>();

window.addEventListener("popstate", () => listeners.forEach((notify) => notify()));

/** Goes to `path` inside the page, without a reload. */
export function navigate(path: string): void {
  if (path === location.pathname + location.search) return;
  history.pushState(null, "", path);
  listeners.forEach((notify) => notify());
  window.scrollTo(0, 0);
}

/** The current path and query; re-renders the caller when they change. */
export function useLocation(): { path: string; query: URLSearchParams } {
  const [, setTick] = useState(0);
  useEffect(() => {
    const notify = () => setTick((n) => n + 1);
    listeners.add(notify);
    return () => {
      listeners.delete(notify);
    };
  }, []);
  return { path: location.pathname, query: new URLSearchParams(location.search) };
}

/** Click handler of in-page links: a plain left click navigates in place;
 *  modified clicks (new tab, ...) are left to the browser. */
export function follow(event: MouseEvent): void {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const anchor = event.currentTarget as HTMLAnchorElement;
  if (anchor.origin !== location.origin) return;
  event.preventDefault();
  navigate(anchor.pathname + anchor.search);
}
