// A country's flag, from the flag-icons package, bundled with the
// interface (one small SVG file per country, fetched when shown).

const FILES = import.meta.glob<string>("/node_modules/flag-icons/flags/4x3/??.svg", {
  query: "?url",
  import: "default",
  eager: true,
});

const BY_CODE = new Map<string, string>(
  Object.entries(FILES).map(([path, url]) => [path.slice(path.lastIndexOf("/") + 1, -4), url]),
);

export function Flag({ code, name }: { code: string | null; name?: string | null }) {
  const url = code ? BY_CODE.get(code.toLowerCase()) : undefined;
  if (!code || !url) return null;
  return <img class="flag" src={url} width={24} height={18} alt={`Flag of ${name ?? code}`} />;
}
