// The dashboard of one API key: usage with its 30-day chart, keyed
// lookups, the key's reports, the report form and the live feed; country
// and network pages below /dashboard/.

import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { api, ApiProblem, messageOf } from "../api";
import { Flag } from "../components/Flag";
import { IpReport } from "../components/IpReport";
import { LiveFeed } from "../components/LiveFeed";
import { LookupForm } from "../components/LookupForm";
import { ErrorNotice, Loading } from "../components/Notice";
import { UsageChart } from "../components/UsageChart";
import { categoryWords, utc } from "../format";
import { follow, navigate, useLocation } from "../router";
import { storedKey, storeKey } from "../session";
import type { IpRecord, KeyReports, Usage } from "../types";
import { AsnPage, CountryPage } from "./Intel";
import { ReportForm } from "./ReportForm";
import { SignIn } from "./SignIn";

export function Dashboard() {
  const [key, setKey] = useState<string | null>(storedKey);
  const { path } = useLocation();

  const signIn = async (candidate: string): Promise<string | null> => {
    try {
      await api.usage(candidate);
    } catch (err) {
      return messageOf(err);
    }
    storeKey(candidate);
    setKey(candidate);
    return null;
  };
  const signOut = () => {
    storeKey(null);
    setKey(null);
    navigate("/dashboard");
  };

  if (!key) return <SignIn onSignIn={signIn} />;

  const country = /^\/dashboard\/country\/([A-Za-z]{2})\/?$/.exec(path);
  const asn = /^\/dashboard\/asn\/([^/]+)\/?$/.exec(path);
  let body;
  if (country?.[1]) body = <CountryPage apiKey={key} code={country[1].toUpperCase()} />;
  else if (asn?.[1]) body = <AsnPage apiKey={key} asn={decodeURIComponent(asn[1])} />;
  else if (path === "/dashboard" || path === "/dashboard/") body = <Home apiKey={key} />;
  else
    body = (
      <ErrorNotice title="No such page">
        The dashboard has no page at {path}. <a href="/dashboard">Go to the dashboard</a>.
      </ErrorNotice>
    );

  return (
    <>
      <div class="session-bar">
        <span>
          Signed in with key <code>{key.split("_")[1] ?? "…"}</code>
        </span>
        <button type="button" class="secondary small" onClick={signOut}>
          Sign out
        </button>
      </div>
      {body}
    </>
  );
}

function Home({ apiKey }: { apiKey: string }) {
  const [usage, setUsage] = useState<Usage | null>(null);
  const [usageError, setUsageError] = useState<string | null>(null);
  const [lookup, setLookup] = useState<
    { kind: "idle" } | { kind: "loading"; ip: string } | { kind: "done"; record: IpRecord } | { kind: "failed"; ip: string; message: string }
  >({ kind: "idle" });
  const [reports, setReports] = useState<KeyReports | null>(null);
  const [reportsError, setReportsError] = useState<string | null>(null);
  const [nudge, setNudge] = useState(0);

  const refreshUsage = useCallback(async () => {
    try {
      setUsage(await api.usage(apiKey));
      setUsageError(null);
    } catch (err) {
      setUsageError(messageOf(err));
    }
  }, [apiKey]);

  const refreshReports = useCallback(async () => {
    try {
      setReports(await api.myReports(apiKey));
      setReportsError(null);
    } catch (err) {
      setReportsError(messageOf(err));
    }
  }, [apiKey]);

  useEffect(() => {
    void refreshUsage();
    void refreshReports();
  }, [refreshUsage, refreshReports]);

  const serial = useRef(0);
  const look = async (ip: string) => {
    if (!ip) {
      setLookup({ kind: "failed", ip, message: "Type an IP address first, for example 8.8.8.8." });
      return;
    }
    // A newer lookup replaces one still running.
    const ticket = ++serial.current;
    setLookup({ kind: "loading", ip });
    try {
      const record = await api.lookup(ip, apiKey);
      if (ticket === serial.current) setLookup({ kind: "done", record });
    } catch (err) {
      if (ticket === serial.current) setLookup({ kind: "failed", ip, message: messageOf(err) });
      if (err instanceof ApiProblem && err.code === "unreachable") return;
    }
    void refreshUsage();
  };

  const liveLoad = useCallback(() => api.live(apiKey), [apiKey]);
  const current = lookup.kind === "done" ? lookup.record.ip : "";
  const asked = lookup.kind === "done" ? lookup.record.ip : lookup.kind === "idle" ? "" : lookup.ip;

  return (
    <div class="layout">
      <div class="main-column">
        <h1>Dashboard</h1>
        <UsagePanel usage={usage} error={usageError} />
        <section class="panel" aria-labelledby="dash-lookup-title">
          <h2 id="dash-lookup-title">Look up an address</h2>
          <p class="hint">Lookups here count against your key's daily quota.</p>
          <LookupForm initial={asked} busy={lookup.kind === "loading"} onLookup={(ip) => void look(ip)} />
          <div aria-live="polite">
            {lookup.kind === "loading" && <Loading what={`Looking up ${lookup.ip}`} />}
            {lookup.kind === "failed" && (
              <ErrorNotice title={lookup.ip ? `No answer for ${lookup.ip}` : "Nothing to look up"}>{lookup.message}</ErrorNotice>
            )}
            {lookup.kind === "done" && <IpReport record={lookup.record} links />}
          </div>
        </section>
        <ReportForm
          apiKey={apiKey}
          suggestedIp={current}
          onFiled={() => {
            void refreshReports();
            setNudge((n) => n + 1);
          }}
        />
        <MyReports reports={reports} error={reportsError} />
      </div>
      <aside class="side-column">
        <LiveFeed load={liveLoad} links nudge={nudge} onPick={(ip) => void look(ip)} />
      </aside>
    </div>
  );
}

function UsagePanel({ usage, error }: { usage: Usage | null; error: string | null }) {
  if (error) return <ErrorNotice title="Usage could not be read">{error}</ErrorNotice>;
  if (!usage) return <Loading what="Reading your usage" />;
  const share = usage.daily_limit > 0 ? Math.min(1, usage.today / usage.daily_limit) : 1;
  const resets = new Date(usage.reset_unix * 1000);
  return (
    <section class="panel usage" aria-labelledby="usage-title">
      <h2 id="usage-title">Usage</h2>
      <dl class="stats">
        <div>
          <dt>Today</dt>
          <dd data-testid="usage-today">{usage.today.toLocaleString("en-US")}</dd>
        </div>
        <div>
          <dt>This month</dt>
          <dd data-testid="usage-month">{usage.this_month.toLocaleString("en-US")}</dd>
        </div>
        <div>
          <dt>Daily limit</dt>
          <dd data-testid="usage-limit">{usage.daily_limit.toLocaleString("en-US")}</dd>
        </div>
        <div>
          <dt>Plan</dt>
          <dd class="plan">{usage.plan}</dd>
        </div>
      </dl>
      <div
        class="quota-bar"
        role="progressbar"
        aria-label="Share of today's quota used"
        aria-valuemin={0}
        aria-valuemax={usage.daily_limit}
        aria-valuenow={usage.today}
      >
        <span class={share >= 1 ? "quota-fill quota-full" : "quota-fill"} ref={(el) => {
            if (el) el.style.width = `${share * 100}%`;
          }} />
      </div>
      <p class="hint">
        {Math.max(0, usage.daily_limit - usage.today).toLocaleString("en-US")} lookups left today; the quota resets at{" "}
        {utc(resets.toISOString())}.
      </p>
      <UsageChart history={usage.history} limit={usage.daily_limit} />
    </section>
  );
}

function MyReports({ reports, error }: { reports: KeyReports | null; error: string | null }) {
  return (
    <section class="panel" aria-labelledby="my-reports-title">
      <h2 id="my-reports-title">Your reports</h2>
      {error && <ErrorNotice title="Your reports could not be read">{error}</ErrorNotice>}
      {!reports && !error && <Loading what="Reading your reports" />}
      {reports && reports.items.length === 0 && <p class="empty">You have not filed any report with this key yet.</p>}
      {reports && reports.items.length > 0 && (
        <div class="table-scroll">
          <table class="my-reports">
            <thead>
              <tr>
                <th scope="col">Address</th>
                <th scope="col">What</th>
                <th scope="col">Country</th>
                <th scope="col">Network</th>
                <th scope="col">Filed</th>
              </tr>
            </thead>
            <tbody>
              {reports.items.map((r) => (
                <tr key={r.id} data-report={r.id}>
                  <td class="mono">{r.ip}</td>
                  <td>
                    {r.categories.map(categoryWords).join(", ")}
                    <span class="muted"> · {r.severity}</span>
                  </td>
                  <td>
                    {r.country ? (
                      <a href={`/dashboard/country/${r.country}`} onClick={follow} class="country">
                        <Flag code={r.country} name={r.country_name} /> {r.country_name ?? r.country}
                      </a>
                    ) : (
                      <span class="muted">unknown</span>
                    )}
                  </td>
                  <td>
                    {r.asn !== null ? (
                      <a href={`/dashboard/asn/${r.asn}`} onClick={follow}>
                        AS{r.asn}
                        {r.asn_name && <span class="muted"> {r.asn_name}</span>}
                      </a>
                    ) : (
                      <span class="muted">unknown</span>
                    )}
                  </td>
                  <td>{utc(r.received_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
