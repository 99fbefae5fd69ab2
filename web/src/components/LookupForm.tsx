// The address box: any IPv4 or IPv6 address, or the caller's own.

import { useState } from "preact/hooks";

export function LookupForm({
  initial,
  busy,
  onLookup,
  onMine,
}: {
  initial: string;
  busy: boolean;
  onLookup: (ip: string) => void;
  onMine?: () => void;
}) {
  // What the reader types wins over an answer that arrives meanwhile (the
  // "my address" lookup at page load, say); once submitted, the box shows
  // what the page shows again.
  const [draft, setDraft] = useState<string | null>(null);
  const text = draft ?? initial;
  const submit = (event: Event) => {
    event.preventDefault();
    setDraft(null);
    onLookup(text.trim());
  };
  return (
    // The buttons stay enabled while a lookup runs: a new one replaces it.
    <form class="lookup" onSubmit={submit} role="search" aria-label="Look up an IP address" aria-busy={busy}>
      <label for="lookup-ip">IP address</label>
      <div class="lookup-row">
        <input
          id="lookup-ip"
          name="ip"
          type="text"
          inputMode="text"
          autoComplete="off"
          autoCapitalize="off"
          spellcheck={false}
          placeholder="8.8.8.8 or 2001:4860:4860::8888"
          value={text}
          onInput={(e) => setDraft((e.currentTarget as HTMLInputElement).value)}
          aria-describedby="lookup-hint"
        />
        <button type="submit">
          Look up
        </button>
        {onMine && (
          <button
            type="button"
            class="secondary"
            onClick={() => {
              setDraft(null);
              onMine();
            }}
          >
            My address
          </button>
        )}
      </div>
      <p id="lookup-hint" class="hint">
        Any IPv4 or IPv6 address: its location, network and threat score, with the reasons.
      </p>
    </form>
  );
}
