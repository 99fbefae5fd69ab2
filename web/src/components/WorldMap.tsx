// A world map drawn as SVG from Natural Earth's 1:110m countries (the
// world-atlas package), with a marker at the looked-up location. Nothing
// is fetched from elsewhere: the outlines are part of the bundle.

import { geoContains, geoGraticule10, geoNaturalEarth1, geoPath } from "d3-geo";
import type { GeoPermissibleObjects } from "d3-geo";
import type { Feature, FeatureCollection, Geometry } from "geojson";
import { feature } from "topojson-client";
import type { GeometryCollection, Topology } from "topojson-specification";
import world from "world-atlas/countries-110m.json";

const WIDTH = 960;
const HEIGHT = 500;

interface Outlines {
  countries: { feature: Feature<Geometry>; d: string }[];
  sphere: string;
  graticule: string;
  project: (lon: number, lat: number) => [number, number] | null;
}

let outlines: Outlines | null = null;

/** Projects the outlines once, on first use. */
function draw(): Outlines {
  if (outlines) return outlines;
  const topology = world as unknown as Topology<{ countries: GeometryCollection }>;
  const collection = feature(topology, topology.objects.countries) as FeatureCollection<Geometry>;
  const projection = geoNaturalEarth1().fitExtent(
    [
      [4, 4],
      [WIDTH - 4, HEIGHT - 4],
    ],
    { type: "Sphere" } as GeoPermissibleObjects,
  );
  const path = geoPath(projection);
  outlines = {
    countries: collection.features.map((f) => ({ feature: f, d: path(f) ?? "" })),
    sphere: path({ type: "Sphere" } as GeoPermissibleObjects) ?? "",
    graticule: path(geoGraticule10()) ?? "",
    project: (lon, lat) => projection([lon, lat]),
  };
  return outlines;
}

export function WorldMap({
  latitude,
  longitude,
  label,
}: {
  latitude: number | null;
  longitude: number | null;
  label: string;
}) {
  const map = draw();
  const located = latitude !== null && longitude !== null;
  const point = located ? map.project(longitude, latitude) : null;
  const description = located
    ? `World map with a marker at ${label}`
    : "World map; the data has no location for this address";
  return (
    <figure class="map">
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={description} data-marker={point ? "yes" : "no"}>
        <path class="map-sphere" d={map.sphere} />
        <path class="map-graticule" d={map.graticule} />
        {map.countries.map(({ feature: f, d }, i) => (
          <path
            key={i}
            class={located && geoContains(f, [longitude, latitude]) ? "map-country map-here" : "map-country"}
            d={d}
          />
        ))}
        {point && (
          <g class="map-marker" transform={`translate(${point[0].toFixed(1)} ${point[1].toFixed(1)})`}>
            <circle class="map-marker-halo" r="16" />
            <circle class="map-marker-dot" r="6" />
          </g>
        )}
      </svg>
      <figcaption>
        {located ? label : "No location in the data for this address."}{" "}
        <span class="muted">Map: Natural Earth (public domain), via world-atlas.</span>
      </figcaption>
    </figure>
  );
}
