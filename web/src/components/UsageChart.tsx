// Lookups per day over the last 30 UTC days, as an SVG bar chart with a
// table of the same figures for screen readers and keyboards.

import type { DayUsage } from "../types";

const HEIGHT = 200;
const LEFT = 44;
const BOTTOM = 24;
const TOP = 20;
const RIGHT = 8;

/** A round upper bound for the axis: 1, 2, 5, 10, 20, 50, ... */
function ceiling(max: number): number {
  let step = 1;
  for (;;) {
    for (const m of [1, 2, 5]) {
      if (m * step >= max) return m * step;
    }
    step *= 10;
  }
}

export function UsageChart({ history, limit }: { history: DayUsage[]; limit: number }) {
  // Narrower drawing on phones, so that it is not scaled down to unreadable.
  const WIDTH = window.matchMedia("(max-width: 640px)").matches ? 360 : 600;
  const max = ceiling(Math.max(1, ...history.map((d) => d.lookups)));
  const plotW = WIDTH - LEFT - RIGHT;
  const plotH = HEIGHT - TOP - BOTTOM;
  const slot = plotW / Math.max(1, history.length);
  const y = (v: number) => TOP + plotH - (v / max) * plotH;
  const total = history.reduce((sum, d) => sum + d.lookups, 0);
  const ticks = max >= 2 && max % 2 === 0 ? [0, max / 2, max] : [0, max];
  return (
    <figure class="chart">
      <svg
        viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
        role="img"
        aria-label={`Lookups per day over the last ${history.length} days: ${total} in all`}
      >
        {ticks.map((t) => (
          <g key={t} class="chart-tick">
            <line x1={LEFT} x2={WIDTH - RIGHT} y1={y(t)} y2={y(t)} />
            <text x={LEFT - 6} y={y(t) + 4} text-anchor="end">
              {t.toLocaleString("en-US")}
            </text>
          </g>
        ))}
        {history.map((d, i) => {
          const h = (d.lookups / max) * plotH;
          const x = LEFT + i * slot + slot * 0.15;
          const last = i === history.length - 1;
          return (
            <g key={d.day}>
              <rect
                class={last ? "chart-bar chart-today" : "chart-bar"}
                x={x.toFixed(1)}
                y={(TOP + plotH - h).toFixed(1)}
                width={(slot * 0.7).toFixed(1)}
                height={Math.max(h, d.lookups > 0 ? 1.5 : 0).toFixed(1)}
              >
                <title>
                  {d.day}: {d.lookups} lookup{d.lookups === 1 ? "" : "s"}
                </title>
              </rect>
              {(history.length - 1 - i) % 7 === 0 && (
                <text
                  class="chart-day"
                  x={(last ? x + slot * 0.7 : x + slot * 0.35).toFixed(1)}
                  y={HEIGHT - 4}
                  text-anchor={last ? "end" : "middle"}
                >
                  {last ? "today" : d.day.slice(5)}
                </text>
              )}
            </g>
          );
        })}
      </svg>
      <figcaption class="muted">
        Lookups per UTC day, the last {history.length} days; the daily limit is {limit.toLocaleString("en-US")}.
      </figcaption>
      <details>
        <summary>Show the figures as a table</summary>
        <div class="table-scroll">
          <table class="usage-table">
            <thead>
              <tr>
                <th scope="col">Day (UTC)</th>
                <th scope="col">Lookups</th>
              </tr>
            </thead>
            <tbody>
              {[...history].reverse().map((d) => (
                <tr key={d.day}>
                  <td>{d.day}</td>
                  <td>{d.lookups}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </details>
    </figure>
  );
}
