// The threat level in words, with a shape of its own and the score, so
// that it is never told by colour alone.

import { LEVEL_RANGES, LEVEL_WORDS, LEVELS } from "../format";
import type { Level } from "../types";

/** A shape per level: circle with a tick, square with a dot, triangle,
 *  octagon with a bar, octagon with a cross. */
export function LevelIcon({ level }: { level: Level }) {
  const shape = {
    clean: (
      <>
        <circle cx="12" cy="12" r="10" />
        <path class="mark" d="M7 12.5l3.2 3.2L17 9" />
      </>
    ),
    low: (
      <>
        <rect x="3" y="3" width="18" height="18" rx="3" />
        <circle class="dot" cx="12" cy="12" r="2.6" />
      </>
    ),
    medium: (
      <>
        <path d="M12 2.5L22 20.5H2z" />
        <path class="mark" d="M12 9v5.5M12 17.2v.3" />
      </>
    ),
    high: (
      <>
        <path d="M8 2h8l6 6v8l-6 6H8l-6-6V8z" />
        <path class="mark" d="M12 6.5v7M12 16.8v.3" />
      </>
    ),
    critical: (
      <>
        <path d="M8 2h8l6 6v8l-6 6H8l-6-6V8z" />
        <path class="mark" d="M8.5 8.5l7 7M15.5 8.5l-7 7" />
      </>
    ),
  }[level];
  return (
    <svg class={`level-icon level-${level}`} viewBox="0 0 24 24" aria-hidden="true" focusable="false">
      {shape}
    </svg>
  );
}

export function ThreatBadge({ level, score, compact = false }: { level: Level; score: number; compact?: boolean }) {
  const words = LEVEL_WORDS[level];
  const position = LEVELS.indexOf(level) + 1;
  return (
    <div
      class={`badge badge-${level}${compact ? " badge-compact" : ""}`}
      role="img"
      aria-label={`Threat level: ${words}, score ${score} out of 100`}
      data-level={level}
    >
      <LevelIcon level={level} />
      <span class="badge-words">{words}</span>
      <span class="badge-score">
        {score}
        <span class="badge-out-of">/100</span>
      </span>
      {!compact && (
        <span class="badge-meter" aria-hidden="true" title={`Level ${position} of 5 (${LEVEL_RANGES[level]})`}>
          {LEVELS.map((l, i) => (
            <span key={l} class={i < position ? "on" : "off"} />
          ))}
        </span>
      )}
    </div>
  );
}
