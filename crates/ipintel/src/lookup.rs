//! `ipintel lookup ADDR...`: records from the local data, no server.

use std::io::Write;

use anyhow::bail;
use ipintel_core::addr::parse_ip;

use crate::config::LookupConfig;
use crate::serve::load_data;

/// Prints one JSON record per valid address (one per line); invalid
/// addresses are reported on standard error and make the command fail.
pub async fn run(config: LookupConfig, addrs: &[String]) -> anyhow::Result<()> {
    let (_, snapshot) = load_data(&config.data, false).await?;
    let mut out = std::io::stdout().lock();
    let mut invalid = 0usize;
    for text in addrs {
        match parse_ip(text) {
            Ok(ip) => writeln!(out, "{}", serde_json::to_string(&snapshot.lookup(ip))?)?,
            Err(err) => {
                eprintln!("ipintel: '{text}' is not a valid IP address: {err}");
                invalid += 1;
            }
        }
    }
    if invalid > 0 {
        bail!("{invalid} of {} addresses were invalid", addrs.len());
    }
    Ok(())
}
