// Everything known about one address, as panels: threat, location with
// the map, network, detection flags and the reasons behind the score.

import type { ComponentChildren } from "preact";
import {
  FLAG_WORDS,
  categoryWords,
  coordinates,
  localTime,
  percent,
  reservedWords,
  signalWords,
  utc,
} from "../format";
import { follow } from "../router";
import type { FlagKind, IpRecord } from "../types";
import { Flag } from "./Flag";
import { ThreatBadge } from "./ThreatBadge";
import { WorldMap } from "./WorldMap";

const FLAG_KINDS: FlagKind[] = ["vpn", "proxy", "tor", "datacenter", "botnet"];

/** `links`: the country and AS lead to their intel pages (dashboard). */
export function IpReport({ record, links = false }: { record: IpRecord; links?: boolean }) {
  const { geo, threat } = record;
  return (
    <article class="report" aria-labelledby="report-title" data-ip={record.ip}>
      <header class="report-head">
        <div>
          <h2 id="report-title" class="report-ip">
            {record.ip}
          </h2>
          <p class="muted">
            IPv{record.ip_version}
            {geo.network ? ` · in ${geo.network}` : ""}
          </p>
        </div>
        {!record.reserved && <ThreatBadge level={threat.level} score={threat.score} />}
      </header>

      {record.reserved && (
        <div class="notice notice-info reserved" role="note">
          <h3>Special-purpose address: {record.reserved.name}</h3>
          <p>{reservedWords(record.reserved)}</p>
          <p class="muted">
            Range {record.reserved.network}, defined in {record.reserved.rfc} (IANA special-purpose address
            registry).
          </p>
        </div>
      )}

      {!record.reserved && (
        <div class="panels">
          <Location record={record} links={links} />
          <NetworkPanel record={record} links={links} />
          <FlagsPanel record={record} />
          <Reasons record={record} />
        </div>
      )}
      {!record.reserved && threat.reports && (
        <div class="notice notice-warn" role="note">
          <h3>Reported by ipintel users</h3>
          <p>
            {threat.reports.count} report{threat.reports.count === 1 ? "" : "s"} in the last 30 days from{" "}
            {threat.reports.distinct_reporters} reporter{threat.reports.distinct_reporters === 1 ? "" : "s"}, the
            latest {utc(threat.reports.last_reported_at)}: {threat.reports.categories.map(categoryWords).join(", ")}.
          </p>
        </div>
      )}
    </article>
  );
}

function Panel({ title, children, wide = false }: { title: string; children: ComponentChildren; wide?: boolean }) {
  const id = `panel-${title.toLowerCase().replace(/[^a-z]+/g, "-")}`;
  return (
    <section class={wide ? "panel panel-wide" : "panel"} aria-labelledby={id}>
      <h3 id={id}>{title}</h3>
      {children}
    </section>
  );
}

function Row({ term, children }: { term: string; children: ComponentChildren }) {
  return (
    <>
      <dt>{term}</dt>
      <dd>{children ?? <span class="muted">not in the data</span>}</dd>
    </>
  );
}

function Location({ record, links }: { record: IpRecord; links: boolean }) {
  const { geo } = record;
  const country = geo.country ? (
    <span class="country">
      <Flag code={geo.country} name={geo.country_name} />
      {links ? (
        <a href={`/dashboard/country/${geo.country}`} onClick={follow}>
          {geo.country_name ?? geo.country}
        </a>
      ) : (
        <span>{geo.country_name ?? geo.country}</span>
      )}{" "}
      <span class="muted">({geo.country})</span>
    </span>
  ) : null;
  const time = geo.timezone ? localTime(geo.timezone) : null;
  const place = [geo.city, geo.region, geo.country_name].filter(Boolean).join(", ");
  return (
    <Panel title="Location" wide>
      <div class="location">
        <dl class="facts">
          <Row term="Country">{country}</Row>
          <Row term="Region">{geo.region}</Row>
          <Row term="City">{geo.city}</Row>
          <Row term="Coordinates">
            {geo.latitude !== null && geo.longitude !== null ? coordinates(geo.latitude, geo.longitude) : null}
          </Row>
          <Row term="Time zone">
            {geo.timezone ? (
              <>
                {geo.timezone}
                {time && <span class="muted"> · {time} there now</span>}
              </>
            ) : null}
          </Row>
        </dl>
        <WorldMap latitude={geo.latitude} longitude={geo.longitude} label={place || record.ip} />
      </div>
    </Panel>
  );
}

function NetworkPanel({ record, links }: { record: IpRecord; links: boolean }) {
  const { network } = record;
  const asn =
    network.asn === null ? null : links ? (
      <a href={`/dashboard/asn/${network.asn}`} onClick={follow}>
        AS{network.asn}
      </a>
    ) : (
      <>AS{network.asn}</>
    );
  const type = network.connection_type === "cdn" ? "Content delivery network" : network.connection_type === "datacenter" ? "Datacenter or hosting" : null;
  return (
    <Panel title="Network">
      <dl class="facts">
        <Row term="ASN">{asn}</Row>
        <Row term="ISP">{network.isp}</Row>
        <Row term="Organisation">{network.org}</Row>
        <Row term="Connection">{type ?? (network.asn === null ? null : "No source says")}</Row>
        <Row term="Prefix">{network.prefix}</Row>
      </dl>
    </Panel>
  );
}

function FlagsPanel({ record }: { record: IpRecord }) {
  return (
    <Panel title="Detection flags">
      <ul class="flags">
        {FLAG_KINDS.map((kind) => {
          const raised = record.flags[kind];
          const detail = record.flag_details[kind];
          return (
            <li key={kind} class={raised ? "flag-on" : "flag-off"} data-flag={kind} data-raised={raised ? "yes" : "no"}>
              <span class="flag-mark" aria-hidden="true">
                {raised ? "●" : "○"}
              </span>
              <span class="flag-name">{FLAG_WORDS[kind]}</span>
              <span class="flag-state">
                {raised ? "Yes" : "No"}
                {detail && (
                  <span class="muted">
                    {" "}
                    · {percent(detail.confidence)} confidence · {detail.sources.join(", ")}
                  </span>
                )}
              </span>
            </li>
          );
        })}
      </ul>
    </Panel>
  );
}

function Reasons({ record }: { record: IpRecord }) {
  const reasons = record.threat.reasons;
  return (
    <Panel title="Why this score" wide>
      {reasons.length === 0 ? (
        <p>No list or source in the data says anything about this address, so its score is 0.</p>
      ) : (
        <div class="table-scroll">
          <table class="reasons">
            <thead>
              <tr>
                <th scope="col">Signal</th>
                <th scope="col">Source</th>
                <th scope="col">Data date</th>
                <th scope="col">Weight</th>
                <th scope="col">Confidence</th>
              </tr>
            </thead>
            <tbody>
              {reasons.map((r, i) => (
                <tr key={i}>
                  <td>
                    {signalWords(r.signal)}
                    {r.provider && <span class="muted"> ({r.provider})</span>}
                  </td>
                  <td>{r.source}</td>
                  <td>{r.data_date ?? <span class="muted">unknown</span>}</td>
                  <td>{r.weight}</td>
                  <td>
                    {percent(r.confidence)}
                    {r.confidence < 0.5 && <span class="muted"> (too weak to raise a flag)</span>}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Panel>
  );
}
