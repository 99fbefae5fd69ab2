// The public portal: look any address up without a key (limited per client
// address by the service), "my address" by default, and the live feed.

import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { api, messageOf } from "../api";
import { IpReport } from "../components/IpReport";
import { LiveFeed } from "../components/LiveFeed";
import { LookupForm } from "../components/LookupForm";
import { ErrorNotice, Loading } from "../components/Notice";
import { navigate, useLocation } from "../router";
import type { IpRecord } from "../types";

type State =
  | { kind: "idle" }
  | { kind: "loading"; ip: string }
  | { kind: "done"; record: IpRecord; mine: boolean }
  | { kind: "failed"; ip: string; message: string };

export function Portal() {
  const { query } = useLocation();
  const asked = query.get("ip") ?? "";
  const [state, setState] = useState<State>({ kind: "idle" });
  const result = useRef<HTMLDivElement>(null);
  const serial = useRef(0);

  const show = useCallback(async (ip: string, mine = false) => {
    const ticket = ++serial.current;
    setState({ kind: "loading", ip });
    try {
      const record = await api.portalLookup(ip);
      if (ticket === serial.current) setState({ kind: "done", record, mine });
    } catch (err) {
      if (ticket === serial.current) setState({ kind: "failed", ip, message: messageOf(err) });
    }
  }, []);

  const mine = useCallback(async () => {
    const ticket = ++serial.current;
    setState({ kind: "loading", ip: "your address" });
    try {
      const me = await api.me();
      if (ticket !== serial.current) return;
      await show(me.ip, true);
    } catch (err) {
      if (ticket === serial.current) setState({ kind: "failed", ip: "your address", message: messageOf(err) });
    }
  }, [show]);

  // The address in the URL, else the caller's own.
  useEffect(() => {
    if (asked) void show(asked);
    else void mine();
  }, [asked, show, mine]);

  const lookup = (ip: string) => {
    if (!ip) {
      setState({ kind: "failed", ip, message: "Type an IP address first, for example 8.8.8.8." });
      return;
    }
    if (ip === asked) void show(ip);
    else navigate(`/?ip=${encodeURIComponent(ip)}`);
  };

  const pick = (ip: string) => {
    navigate(`/?ip=${encodeURIComponent(ip)}`);
    result.current?.focus();
  };

  return (
    <div class="layout">
      <div class="main-column">
        <section class="intro" aria-labelledby="portal-title">
          <h1 id="portal-title">Who is behind an IP address?</h1>
          <p>
            Location, network and a threat score with its reasons, from open data sets. No key needed here; for more
            lookups and your own reports, use the <a href="/dashboard">dashboard</a>.
          </p>
          <LookupForm
            initial={asked}
            busy={state.kind === "loading"}
            onLookup={lookup}
            onMine={() => {
              if (asked) navigate("/");
              else void mine();
            }}
          />
        </section>
        <div class="result" ref={result} tabIndex={-1} aria-live="polite">
          {state.kind === "loading" && <Loading what={`Looking up ${state.ip}`} />}
          {state.kind === "failed" && (
            <ErrorNotice title={state.ip ? `No answer for ${state.ip}` : "Nothing to look up"}>
              {state.message}
            </ErrorNotice>
          )}
          {state.kind === "done" && (
            <>
              {state.mine && <p class="mine">This is the address your requests come from.</p>}
              <IpReport record={state.record} />
            </>
          )}
        </div>
      </div>
      <aside class="side-column">
        <LiveFeed load={api.portalLive} onPick={pick} />
      </aside>
    </div>
  );
}
