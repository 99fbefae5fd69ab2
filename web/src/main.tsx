// The ipintel web interface: the portal at /, the dashboard at /dashboard.

import { render } from "preact";
import { Dashboard } from "./pages/Dashboard";
import { Portal } from "./pages/Portal";
import { follow, useLocation } from "./router";
import "./styles.css";

function App() {
  const { path } = useLocation();
  const onDashboard = path === "/dashboard" || path.startsWith("/dashboard/");
  return (
    <>
      <a class="skip" href="#content">
        Skip to the content
      </a>
      <header class="top">
        <a class="brand" href="/" onClick={follow} aria-label="ipintel portal home">
          <img src="/favicon.svg" width={28} height={28} alt="" />
          <span>ipintel</span>
        </a>
        <nav aria-label="Main">
          <a href="/" onClick={follow} aria-current={onDashboard ? undefined : "page"}>
            Portal
          </a>
          <a href="/dashboard" onClick={follow} aria-current={onDashboard ? "page" : undefined}>
            Dashboard
          </a>
          <a href="/openapi.json">API</a>
        </nav>
      </header>
      <main id="content" tabIndex={-1}>
        {onDashboard ? <Dashboard /> : <Portal />}
      </main>
      <footer class="bottom">
        <p>
          Data: IP geolocation by <a href="https://db-ip.com">DB-IP</a> (CC BY 4.0); ASN data from RouteViews and DB-IP;
          Tor, VPN and hosting ranges from iporigin; FireHOL, Spamhaus DROP and Emerging Threats lists; kavachnet;
          cloudcheck. Map: Natural Earth via world-atlas. Flags: flag-icons (MIT).
        </p>
      </footer>
    </>
  );
}

const root = document.getElementById("app");
if (root) {
  root.textContent = "";
  render(<App />, root);
}
