// The most recently reported addresses, refreshed every few seconds.

import { useCallback, useEffect, useState } from "preact/hooks";
import { messageOf } from "../api";
import { ago, categoryWords } from "../format";
import { follow } from "../router";
import type { LiveFeed as Feed } from "../types";
import { Flag } from "./Flag";
import { ErrorNotice, Loading } from "./Notice";
import { ThreatBadge } from "./ThreatBadge";

/** Seconds between refreshes. */
export const REFRESH_SECS = 10;

export function LiveFeed({
  load,
  links = false,
  nudge = 0,
  onPick,
}: {
  load: () => Promise<Feed>;
  links?: boolean;
  /** Changing it refreshes at once (after filing a report). */
  nudge?: number;
  onPick?: (ip: string) => void;
}) {
  const [feed, setFeed] = useState<Feed | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [updated, setUpdated] = useState<Date | null>(null);

  const refresh = useCallback(async () => {
    try {
      setFeed(await load());
      setError(null);
      setUpdated(new Date());
    } catch (err) {
      setError(messageOf(err));
    }
  }, [load]);

  useEffect(() => {
    void refresh();
    // Not while the tab is in the background: nobody reads it there.
    const timer = window.setInterval(() => {
      if (!document.hidden) void refresh();
    }, REFRESH_SECS * 1000);
    return () => window.clearInterval(timer);
  }, [refresh, nudge]);

  return (
    <section class="panel live" aria-labelledby="live-title">
      <h2 id="live-title">
        <span class="live-dot" aria-hidden="true" /> Live threat feed
      </h2>
      <p class="hint">
        Addresses reported by ipintel users, latest first. Refreshes every {REFRESH_SECS} seconds
        {updated && <> · updated {updated.toLocaleTimeString("en-GB")}</>}.
      </p>
      {error && <ErrorNotice title="The feed could not be refreshed">{error}</ErrorNotice>}
      {!feed && !error && <Loading what="Loading the feed" />}
      {feed && feed.items.length === 0 && <p class="empty">No reports in the last 30 days yet.</p>}
      {feed && feed.items.length > 0 && (
        <ol class="live-list" aria-live="polite">
          {feed.items.map((item) => (
            <li key={item.network} class="live-item" data-ip={item.ip}>
              <div class="live-main">
                {onPick ? (
                  <button type="button" class="link" onClick={() => onPick(item.ip)}>
                    {item.network}
                  </button>
                ) : (
                  <span class="mono">{item.network}</span>
                )}
                <ThreatBadge level={item.level} score={item.score} compact />
              </div>
              <div class="live-meta">
                {item.country &&
                  (links ? (
                    <a href={`/dashboard/country/${item.country}`} onClick={follow} class="country">
                      <Flag code={item.country} /> {item.country}
                    </a>
                  ) : (
                    <span class="country">
                      <Flag code={item.country} /> {item.country}
                    </span>
                  ))}
                {item.asn !== null &&
                  (links ? (
                    <a href={`/dashboard/asn/${item.asn}`} onClick={follow}>
                      AS{item.asn}
                    </a>
                  ) : (
                    <span>AS{item.asn}</span>
                  ))}
                <span>{item.categories.map(categoryWords).join(", ")}</span>
                <span class="muted">
                  {item.reports} report{item.reports === 1 ? "" : "s"} · {ago(item.last_reported_at)}
                </span>
              </div>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
