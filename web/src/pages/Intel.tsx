// Country and network (AS) intel pages of the dashboard.

import { Fragment, type ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, messageOf } from "../api";
import { Flag } from "../components/Flag";
import { ErrorNotice, Loading } from "../components/Notice";
import { count, percent } from "../format";
import { follow } from "../router";
import type { AreaReports, AsnIntel, CountryIntel, Family, TopNetwork } from "../types";

function useIntel<T>(load: () => Promise<T>, deps: unknown[]): { data: T | null; error: string | null } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    setData(null);
    setError(null);
    load().then(
      (value) => live && setData(value),
      (err) => live && setError(messageOf(err)),
    );
    return () => {
      live = false;
    };
  }, deps);
  return { data, error };
}

function Back() {
  return (
    <p>
      <a href="/dashboard" onClick={follow}>
        ← Back to the dashboard
      </a>
    </p>
  );
}

export function CountryPage({ apiKey, code }: { apiKey: string; code: string }) {
  const { data, error } = useIntel<CountryIntel>(() => api.country(code, apiKey), [code, apiKey]);
  return (
    <div class="intel">
      <Back />
      {error && <ErrorNotice title={`No figures for ${code}`}>{error}</ErrorNotice>}
      {!data && !error && <Loading what={`Reading the figures of ${code}`} />}
      {data && (
        <>
          <h1 class="country">
            <Flag code={data.country} name={data.name} /> {data.name ?? data.country}{" "}
            <span class="muted">({data.country})</span>
          </h1>
          <p class="hint">Counted from the loaded data when it was built; each visit counts one lookup.</p>
          <div class="panels">
            <FamilyPanel title="IPv4" family={data.ipv4} />
            <FamilyPanel title="IPv6" family={data.ipv6} />
            <TopNetworks title="Largest networks (IPv4)" list={data.top_networks.ipv4} />
            <TopNetworks title="Largest networks (IPv6)" list={data.top_networks.ipv6} />
            <ReportsPanel reports={data.reports} />
          </div>
        </>
      )}
    </div>
  );
}

export function AsnPage({ apiKey, asn }: { apiKey: string; asn: string }) {
  const { data, error } = useIntel<AsnIntel>(() => api.asn(asn, apiKey), [asn, apiKey]);
  return (
    <div class="intel">
      <Back />
      {error && <ErrorNotice title={`No figures for ${asn}`}>{error}</ErrorNotice>}
      {!data && !error && <Loading what={`Reading the figures of ${asn}`} />}
      {data && (
        <>
          <h1>
            AS{data.asn} <span class="muted">{data.name}</span>
          </h1>
          <dl class="facts">
            <dt>Country</dt>
            <dd>
              {data.country ? (
                <a href={`/dashboard/country/${data.country}`} onClick={follow} class="country">
                  <Flag code={data.country} name={data.country_name} /> {data.country_name ?? data.country}
                </a>
              ) : (
                <span class="muted">not in the data</span>
              )}
            </dd>
            <dt>Connection</dt>
            <dd>
              {data.connection_type === "cdn"
                ? "Content delivery network"
                : data.connection_type === "datacenter"
                  ? "Datacenter or hosting"
                  : "Mostly neither datacenter nor CDN"}
            </dd>
            <dt>Prefixes</dt>
            <dd>
              {count(data.prefixes_total)}
              {data.prefixes_truncated && <span class="muted"> (the first {data.prefixes.length} listed below)</span>}
            </dd>
          </dl>
          <div class="panels">
            <FamilyPanel title="IPv4" family={data.ipv4} />
            <FamilyPanel title="IPv6" family={data.ipv6} />
            <ReportsPanel reports={data.reports} />
            <Section title="Prefixes">
              <ul class="prefixes">
                {data.prefixes.slice(0, 200).map((p) => (
                  <li key={p} class="mono">
                    {p}
                  </li>
                ))}
              </ul>
              {data.prefixes.length > 200 && <p class="muted">and {data.prefixes.length - 200} more.</p>}
            </Section>
          </div>
        </>
      )}
    </div>
  );
}

function Section({ title, children }: { title: string; children: ComponentChildren }) {
  return (
    <section class="panel">
      <h2>{title}</h2>
      {children}
    </section>
  );
}

const FLAGGED_WORDS: [keyof Family["flagged"], string][] = [
  ["tor", "Tor"],
  ["vpn", "VPN"],
  ["proxy", "Proxy"],
  ["datacenter", "Datacenter"],
  ["blocklisted", "Blocklisted"],
  ["botnet", "Botnet"],
];

function FamilyPanel({ title, family }: { title: string; family: Family }) {
  return (
    <Section title={title}>
      <dl class="facts">
        <dt>Addresses</dt>
        <dd>{count(family.addresses)}</dd>
        <dt>Networks</dt>
        <dd>{count(family.networks)}</dd>
        {FLAGGED_WORDS.map(([kind, words]) => (
          <Fragment key={kind}>
            <dt>{words}</dt>
            <dd>
              {count(family.flagged[kind].addresses)} <span class="muted">({percent(family.flagged[kind].share)})</span>
            </dd>
          </Fragment>
        ))}
      </dl>
    </Section>
  );
}

function TopNetworks({ title, list }: { title: string; list: TopNetwork[] }) {
  return (
    <Section title={title}>
      {list.length === 0 ? (
        <p class="empty">None in the data.</p>
      ) : (
        <ol class="top-networks">
          {list.map((n) => (
            <li key={n.asn}>
              <a href={`/dashboard/asn/${n.asn}`} onClick={follow}>
                AS{n.asn}
              </a>{" "}
              {n.name} <span class="muted">· {count(n.addresses)} addresses</span>
            </li>
          ))}
        </ol>
      )}
    </Section>
  );
}

function ReportsPanel({ reports }: { reports: AreaReports }) {
  return (
    <Section title="Abuse reports">
      <dl class="facts">
        <dt>Last 24 hours</dt>
        <dd>{reports.last_day}</dd>
        <dt>Last 7 days</dt>
        <dd>{reports.last_week}</dd>
        <dt>Addresses reported (7 days)</dt>
        <dd>{reports.distinct_addresses_last_week}</dd>
      </dl>
      {reports.top_networks.length > 0 && (
        <ol class="top-networks">
          {reports.top_networks.map((n, i) => (
            <li key={i}>
              {n.asn !== null ? (
                <a href={`/dashboard/asn/${n.asn}`} onClick={follow}>
                  AS{n.asn}
                </a>
              ) : (
                "Unknown network"
              )}{" "}
              {n.name} <span class="muted">· {n.reports} {n.reports === 1 ? "report" : "reports"}</span>
            </li>
          ))}
        </ol>
      )}
    </Section>
  );
}
