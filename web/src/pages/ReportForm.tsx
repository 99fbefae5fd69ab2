// Filing an abuse report with the signed-in key.

import { useEffect, useState } from "preact/hooks";
import { api, messageOf } from "../api";
import { ErrorNotice } from "../components/Notice";
import { CATEGORIES, categoryWords } from "../format";
import type { ReportReceipt } from "../types";

const SEVERITIES = ["low", "medium", "high", "critical"];

export function ReportForm({
  apiKey,
  suggestedIp,
  onFiled,
}: {
  apiKey: string;
  suggestedIp: string;
  onFiled: (receipt: ReportReceipt) => void;
}) {
  const [ip, setIp] = useState(suggestedIp);
  const [chosen, setChosen] = useState<string[]>([]);
  const [severity, setSeverity] = useState("medium");
  const [confidence, setConfidence] = useState("75");
  const [comment, setComment] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [receipt, setReceipt] = useState<ReportReceipt | null>(null);

  useEffect(() => setIp(suggestedIp), [suggestedIp]);

  const toggle = (name: string, on: boolean) =>
    setChosen((list) => (on ? [...list, name] : list.filter((c) => c !== name)));

  const submit = async (event: Event) => {
    event.preventDefault();
    setReceipt(null);
    if (!ip.trim()) return setError("Type the address to report.");
    if (chosen.length === 0) return setError("Choose at least one category: what did the address do?");
    setBusy(true);
    setError(null);
    try {
      const body: Record<string, unknown> = {
        ip: ip.trim(),
        category: chosen,
        severity,
      };
      // Left empty, the service's default confidence applies.
      if (confidence.trim()) body.confidence = Number(confidence);
      if (comment.trim()) body.comment = comment.trim();
      const stored = await api.report(apiKey, body);
      setReceipt(stored);
      setChosen([]);
      setComment("");
      onFiled(stored);
    } catch (err) {
      setError(messageOf(err));
    }
    setBusy(false);
  };

  return (
    <section class="panel" aria-labelledby="report-form-title">
      <h2 id="report-form-title">Report an abusive address</h2>
      <form class="report-form" onSubmit={submit}>
        <label for="report-ip">Address</label>
        <input
          id="report-ip"
          name="ip"
          type="text"
          autoComplete="off"
          spellcheck={false}
          value={ip}
          onInput={(e) => setIp((e.currentTarget as HTMLInputElement).value)}
        />
        <fieldset>
          <legend>What did it do?</legend>
          <div class="categories">
            {CATEGORIES.map((name) => (
              <label key={name} class="check">
                <input
                  type="checkbox"
                  name="category"
                  value={name}
                  checked={chosen.includes(name)}
                  onChange={(e) => toggle(name, (e.currentTarget as HTMLInputElement).checked)}
                />
                {categoryWords(name)}
              </label>
            ))}
          </div>
        </fieldset>
        <div class="form-row">
          <div>
            <label for="report-severity">Severity</label>
            <select
              id="report-severity"
              name="severity"
              value={severity}
              onChange={(e) => setSeverity((e.currentTarget as HTMLSelectElement).value)}
            >
              {SEVERITIES.map((s) => (
                <option key={s} value={s}>
                  {s.charAt(0).toUpperCase() + s.slice(1)}
                </option>
              ))}
            </select>
          </div>
          <div>
            <label for="report-confidence">Your confidence (0–100)</label>
            <input
              id="report-confidence"
              name="confidence"
              type="number"
              min={0}
              max={100}
              step={1}
              value={confidence}
              onInput={(e) => setConfidence((e.currentTarget as HTMLInputElement).value)}
            />
          </div>
        </div>
        <label for="report-comment">Comment (optional, up to 1024 characters)</label>
        <textarea
          id="report-comment"
          name="comment"
          maxLength={1024}
          rows={3}
          value={comment}
          onInput={(e) => setComment((e.currentTarget as HTMLTextAreaElement).value)}
        />
        <button type="submit" disabled={busy}>
          File the report
        </button>
      </form>
      {error && <ErrorNotice title="The report was not filed">{error}</ErrorNotice>}
      {receipt && (
        <p class="notice notice-ok" role="status">
          Report #{receipt.id} on {receipt.ip} was stored. It now weighs in that address's score and shows in the live
          feed.
        </p>
      )}
    </section>
  );
}
