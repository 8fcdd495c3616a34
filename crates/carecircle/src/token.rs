//! `carecircle token` and the server's keys: the development issuer mints tokens for demo users,
//! partner systems and the administrator; `serve` loads the same keys to verify them.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use carecircle_auth::{SigningKey, TokenRequest, TrustedIssuer, DEV_ISSUER};
use carecircle_http::auth::{AuthConfig, PURPOSES};
use clap::Args;

/// The file of the development issuer's key in the key directory.
const DEV_KEY_FILE: &str = "dev-issuer.pem";
/// The file of the token endpoint's key in the key directory.
const OWN_KEY_FILE: &str = "token-signing.pem";

/// Who a development token is for, and what it carries.
#[derive(Args, Clone)]
#[command(group = clap::ArgGroup::new("who").required(true))]
pub struct TokenArgs {
    /// A professional: the Practitioner id (or `Practitioner/{id}`).
    #[arg(long, group = "who")]
    user: Option<String>,
    /// A person, for their own record: the Patient id (or `Patient/{id}`).
    #[arg(long, group = "who")]
    patient: Option<String>,
    /// A partner organisation's system (SMART Backend Services), with --org.
    #[arg(long, group = "who", requires = "org")]
    system: bool,
    /// The organisation a system token acts for (id or `Organization/{id}`).
    #[arg(long)]
    org: Option<String>,
    /// The partnership's administrator (sets up partners, agreements and users).
    #[arg(long, group = "who")]
    admin: bool,
    /// Purpose of use: TREAT (default), ETREAT (break-glass, needs --reason), HOPERAT, HRESCH, PUBHLTH.
    #[arg(long)]
    purpose: Option<String>,
    /// Why (required for ETREAT).
    #[arg(long)]
    reason: Option<String>,
    /// SMART scopes (default: user/*.cruds, patient/*.rs or system/*.cruds).
    #[arg(long)]
    scope: Option<String>,
    /// Lifetime: seconds, or with a unit (90s, 30m, 8h).
    #[arg(long, default_value = "1h")]
    ttl: String,
    /// The server's base URL, which tokens are addressed to.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "CARECIRCLE_BASE_URL")]
    audience: String,
}

fn reference(kind: &str, id: &str) -> String {
    if id.starts_with(&format!("{kind}/")) {
        id.to_string()
    } else {
        format!("{kind}/{id}")
    }
}

/// Parses `90`, `90s`, `30m`, `8h`, `1d` into seconds.
pub fn parse_ttl(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().with_context(|| format!("--ttl '{text}' is not a duration such as 30m or 8h"))?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("--ttl '{text}' has an unknown unit (use s, m, h or d)"),
    };
    if seconds == 0 || seconds > 7 * 86_400 {
        bail!("--ttl must be between 1 second and 7 days");
    }
    Ok(seconds)
}

/// Mints a development token.
pub fn mint(key_dir: &Path, args: &TokenArgs) -> anyhow::Result<String> {
    let purpose = args.purpose.clone().map(|p| p.to_uppercase());
    if let Some(p) = &purpose {
        if !PURPOSES.contains(&p.as_str()) {
            bail!("--purpose must be one of {}", PURPOSES.join(", "));
        }
        if p == "ETREAT" && args.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
            bail!("break-glass (--purpose ETREAT) needs --reason");
        }
    }
    let mut request = TokenRequest {
        purpose_of_use: purpose,
        purpose_reason: args.reason.clone(),
        ttl_seconds: parse_ttl(&args.ttl)?,
        ..Default::default()
    };
    if let Some(user) = &args.user {
        request.subject = reference("Practitioner", user);
        request.fhir_user = Some(request.subject.clone());
        request.scope = args.scope.clone().unwrap_or_else(|| "openid fhirUser user/*.cruds".into());
    } else if let Some(patient) = &args.patient {
        request.subject = reference("Patient", patient);
        request.fhir_user = Some(request.subject.clone());
        request.scope = args.scope.clone().unwrap_or_else(|| "openid fhirUser patient/*.rs".into());
    } else if args.system {
        let org = reference("Organization", args.org.as_deref().unwrap_or_default());
        request.subject = format!("dev-system-{}", org.trim_start_matches("Organization/"));
        request.organization = Some(org);
        request.scope = args.scope.clone().unwrap_or_else(|| "system/*.cruds".into());
    } else {
        request.subject = "carecircle-admin".into();
        request.admin = true;
        request.scope = args.scope.clone().unwrap_or_else(|| "user/*.cruds".into());
    }
    carecircle_auth::Scopes::parse(&request.scope).map_err(|e| anyhow::anyhow!("--scope: {e}"))?;
    let key =
        SigningKey::load_or_create(&key_dir.join(DEV_KEY_FILE)).context("loading the development issuer's key")?;
    Ok(request.mint(&key, DEV_ISSUER, args.audience.trim_end_matches('/'))?)
}

/// Authentication settings of `serve`.
#[derive(Args, Clone)]
pub struct AuthArgs {
    /// Trust the built-in development issuer (tokens from `carecircle token`). For demos and
    /// tests only: anyone who can read the key directory can mint tokens.
    #[arg(long)]
    pub dev_issuer: bool,
    /// An external OpenID Connect provider whose users may sign in: the `iss` of its tokens.
    #[arg(long, requires = "oidc_jwks")]
    pub oidc_issuer: Option<String>,
    /// The provider's JWKS: a file, or an http(s) URL fetched at start and every 10 minutes.
    #[arg(long, requires = "oidc_issuer")]
    pub oidc_jwks: Option<String>,
    /// The audience external tokens must carry (default: the base URL).
    #[arg(long)]
    pub oidc_audience: Option<String>,
    /// The provider's authorization endpoint, advertised in /.well-known/smart-configuration.
    #[arg(long)]
    pub oidc_authorize_url: Option<String>,
}

/// Loads a JWKS from a file or URL.
pub async fn load_jwks(source: &str) -> anyhow::Result<serde_json::Value> {
    let text = if source.starts_with("https://") || source.starts_with("http://") {
        reqwest::get(source)
            .await
            .and_then(|r| r.error_for_status())
            .with_context(|| format!("fetching the JWKS from {source}"))?
            .text()
            .await
            .with_context(|| format!("reading the JWKS from {source}"))?
    } else {
        std::fs::read_to_string(source).with_context(|| format!("reading the JWKS file {source}"))?
    };
    serde_json::from_str(&text).with_context(|| format!("the JWKS from {source} is not JSON"))
}

/// Builds the server's authentication: its own key (created on first start), the development
/// issuer when enabled, and the external provider when configured.
pub async fn auth_config(key_dir: &Path, base_url: &str, args: &AuthArgs) -> anyhow::Result<AuthConfig> {
    let own_key =
        SigningKey::load_or_create(&key_dir.join(OWN_KEY_FILE)).context("loading the token endpoint's signing key")?;
    let dev_key = if args.dev_issuer {
        Some(SigningKey::load_or_create(&key_dir.join(DEV_KEY_FILE)).context("loading the development issuer's key")?)
    } else {
        None
    };
    let mut external = Vec::new();
    if let (Some(issuer), Some(jwks)) = (&args.oidc_issuer, &args.oidc_jwks) {
        let audience = args.oidc_audience.clone().unwrap_or_else(|| base_url.to_string());
        let keys = load_jwks(jwks).await?;
        external.push(TrustedIssuer::external(issuer, &audience, &keys).map_err(|e| anyhow::anyhow!("{jwks}: {e}"))?);
    }
    let mut config = AuthConfig::new(base_url, own_key, dev_key, external);
    config.authorization_endpoint = args.oidc_authorize_url.clone();
    Ok(config)
}

/// Re-reads the external provider's JWKS every ten minutes, so rotated keys are picked up.
pub fn refresh_jwks_periodically(auth: std::sync::Arc<AuthConfig>, issuer: String, source: String) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(std::time::Duration::from_secs(600));
        interval.tick().await;
        loop {
            interval.tick().await;
            match load_jwks(&source).await {
                Ok(keys) => {
                    let mut verifier = auth.verifier.write().unwrap_or_else(|e| e.into_inner());
                    if let Some(trusted) = verifier.issuers_mut().iter_mut().find(|i| i.issuer == issuer) {
                        if let Err(e) = trusted.set_keys(&keys) {
                            tracing::warn!(error = %e, "the refreshed JWKS was refused; keeping the previous keys");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "refreshing the JWKS failed; keeping the previous keys"),
            }
        }
    });
}

/// The key directory: `--key-dir`, or `keys` inside the data directory.
pub fn key_dir(explicit: &Option<PathBuf>, data_dir: &Path) -> PathBuf {
    explicit.clone().unwrap_or_else(|| data_dir.join("keys"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_ttl("90").unwrap(), 90);
        assert_eq!(parse_ttl("30m").unwrap(), 1800);
        assert_eq!(parse_ttl("8h").unwrap(), 28_800);
        assert!(parse_ttl("0").is_err());
        assert!(parse_ttl("3w").is_err());
        assert!(parse_ttl("soon").is_err());
        assert!(parse_ttl("30d").is_err());
    }
}
