// Signing in to the dashboard with an API key, or getting a free one.

import { useState } from "preact/hooks";
import { api, messageOf } from "../api";
import { ErrorNotice } from "../components/Notice";
import type { NewKey } from "../types";

export function SignIn({ onSignIn }: { onSignIn: (key: string) => Promise<string | null> }) {
  const [key, setKey] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [created, setCreated] = useState<NewKey | null>(null);

  const submit = async (event: Event) => {
    event.preventDefault();
    const text = key.trim();
    if (!text) {
      setError("Paste your API key first. It looks like ipintel_…");
      return;
    }
    setBusy(true);
    setError(await onSignIn(text));
    setBusy(false);
  };

  const create = async () => {
    setBusy(true);
    setError(null);
    try {
      const made = await api.newKey();
      setCreated(made);
      setKey(made.key);
    } catch (err) {
      setError(messageOf(err));
    }
    setBusy(false);
  };

  return (
    <section class="panel signin" aria-labelledby="signin-title">
      <h1 id="signin-title">Sign in to the dashboard</h1>
      <p>
        The dashboard shows your key's usage and reports, lets you file abuse reports and opens the country and network
        pages. Your key stays in this browser tab only and is sent to this service alone.
      </p>
      <form onSubmit={submit}>
        <label for="api-key">API key</label>
        <div class="lookup-row">
          <input
            id="api-key"
            name="key"
            type="password"
            autoComplete="off"
            spellcheck={false}
            placeholder="ipintel_…"
            value={key}
            onInput={(e) => setKey((e.currentTarget as HTMLInputElement).value)}
          />
          <button type="submit" disabled={busy}>
            Sign in
          </button>
        </div>
      </form>
      {error && <ErrorNotice title="Could not sign in">{error}</ErrorNotice>}
      <div class="newkey">
        <h2>No key yet?</h2>
        <p>A free key allows 100 lookups and 20 reports a day.</p>
        <button type="button" class="secondary" onClick={create} disabled={busy}>
          Get a free key
        </button>
        {created && (
          <div class="notice notice-info" role="status">
            <h3>Your new key</h3>
            <p>
              <code class="key" data-testid="new-key">
                {created.key}
              </code>
            </p>
            <p>{created.note} It is filled in above: press Sign in.</p>
          </div>
        )}
      </div>
    </section>
  );
}
