//! `ipintel keys create | list | revoke`.

use std::io::Write;

use anyhow::{bail, Context};
use ipintel_store::{KeyId, KeyInfo, Plan};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::config::KeysConfig;
use crate::serve::open_accounts;

/// What to do with keys.
#[derive(Debug)]
pub enum KeysAction {
    /// Create a key and print it once.
    Create {
        /// Free-text label.
        label: Option<String>,
        /// Plan (already reconciled with `daily_limit` by [`plan_for`]);
        /// `None` leaves it to be provisioned as free on first use.
        plan: Option<Plan>,
        /// Own daily limit (custom plan).
        daily_limit: Option<u64>,
        /// Print JSON.
        json: bool,
    },
    /// List keys without secrets.
    List {
        /// Print JSON.
        json: bool,
    },
    /// Revoke a key by id.
    Revoke {
        /// The key id.
        id: String,
    },
}

/// A created key as printed with `--json`.
#[derive(Debug, Serialize)]
struct Created<'a> {
    id: &'a KeyId,
    key: &'a str,
    plan: Option<Plan>,
    daily_limit: u64,
}

/// Runs one key command against the configured store.
pub async fn run(config: KeysConfig, action: KeysAction) -> anyhow::Result<()> {
    let limits = config.plans.limits;
    let (store, accounts) = open_accounts(&config.store.db, limits).await?;
    let mut out = std::io::stdout().lock();
    let outcome = match action {
        KeysAction::Create {
            label,
            plan,
            daily_limit,
            json,
        } => {
            let (info, key) = accounts.create_key(label, plan).await?;
            if daily_limit.is_some() {
                accounts
                    .set_plan(&info.id, Plan::Custom, daily_limit)
                    .await
                    .context("the key was created but its daily limit could not be set")?;
            }
            let limit = limits.daily_limit(plan, daily_limit);
            print_created(&mut out, &info, &key, plan, limit, json)
        }
        KeysAction::List { json } => {
            let keys = accounts.list_keys().await?;
            print_list(&mut out, &keys, json)
        }
        KeysAction::Revoke { id } => revoke(&accounts, &id, &mut out).await,
    };
    store.close().await;
    outcome
}

/// The plan of a new key: a daily limit of its own makes a key custom, and
/// no other plan takes one.
pub fn plan_for(plan: Option<Plan>, daily_limit: Option<u64>) -> Result<Option<Plan>, String> {
    match (plan, daily_limit) {
        (None, Some(_)) => Ok(Some(Plan::Custom)),
        (Some(plan), Some(_)) if plan != Plan::Custom => Err(format!(
            "--daily-limit applies to the custom plan only, not {plan}"
        )),
        (plan, _) => Ok(plan),
    }
}

fn print_created(
    out: &mut impl Write,
    info: &KeyInfo,
    key: &str,
    plan: Option<Plan>,
    daily_limit: u64,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let created = Created {
            id: &info.id,
            key,
            plan,
            daily_limit,
        };
        writeln!(out, "{}", serde_json::to_string(&created)?)?;
    } else {
        let plan = plan.map_or("free on first use", Plan::as_str);
        writeln!(out, "id:          {}", info.id)?;
        writeln!(out, "key:         {key}")?;
        writeln!(out, "plan:        {plan}")?;
        writeln!(out, "daily limit: {daily_limit}")?;
        eprintln!("Store the key now: it is shown only this once.");
    }
    Ok(())
}

fn print_list(out: &mut impl Write, keys: &[KeyInfo], json: bool) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(keys)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<12}  {:<20}  {:<12}  {:<20}  REVOKED",
        "ID", "LABEL", "PLAN", "CREATED"
    )?;
    for key in keys {
        writeln!(
            out,
            "{:<12}  {:<20}  {:<12}  {:<20}  {}",
            key.id,
            key.label.as_deref().unwrap_or("-"),
            key.plan.map_or("-", Plan::as_str),
            timestamp(Some(key.created_at)),
            timestamp(key.revoked_at),
        )?;
    }
    Ok(())
}

async fn revoke(
    accounts: &ipintel_store::Accounts,
    id: &str,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let id: KeyId = id
        .parse()
        .with_context(|| format!("'{id}' is not a key id"))?;
    if !accounts.revoke_key(&id).await? {
        bail!("no active key with id {id} (unknown or already revoked)");
    }
    writeln!(out, "revoked {id}")?;
    Ok(())
}

/// RFC 3339 text of a unix time, or `-`.
fn timestamp(unix: Option<i64>) -> String {
    unix.and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "-".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_limit_implies_custom() {
        assert_eq!(plan_for(None, Some(5)).unwrap(), Some(Plan::Custom));
        assert_eq!(
            plan_for(Some(Plan::Custom), Some(5)).unwrap(),
            Some(Plan::Custom)
        );
        assert!(plan_for(Some(Plan::Free), Some(5)).is_err());
        assert_eq!(
            plan_for(Some(Plan::Enterprise), None).unwrap(),
            Some(Plan::Enterprise)
        );
        assert_eq!(plan_for(None, None).unwrap(), None);
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(timestamp(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(None), "-");
    }
}
