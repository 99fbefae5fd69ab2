// Messages to the reader: errors in words, never a blank panel.

import type { ComponentChildren } from "preact";

export function ErrorNotice({ title = "That did not work", children }: { title?: string; children: ComponentChildren }) {
  return (
    <div class="notice notice-error" role="alert">
      <svg class="notice-icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
        <path d="M12 2.5L22 20.5H2z" />
        <path class="mark" d="M12 9v5.5M12 17.2v.3" />
      </svg>
      <div>
        <h3>{title}</h3>
        <p>{children}</p>
      </div>
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="loading" role="status">
      <span class="spinner" aria-hidden="true" /> {what}…
    </p>
  );
}
