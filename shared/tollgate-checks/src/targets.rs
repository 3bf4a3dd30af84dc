//! Which addresses a check may reach (issue 14.9).
//!
//! A spec can come from a source artifact, so a hostile or careless one
//! could point a check at the function's own Lambda Runtime API
//! (`AWS_LAMBDA_RUNTIME_API`, e.g. `127.0.0.1:9001`) and read the next
//! invocation's event, another job's artifact credentials included, or at a
//! link-local metadata or credentials endpoint (`169.254.169.254`,
//! CodeBuild's `169.254.170.2`, `fd00:ec2::254`) and echo what it answers
//! into a failure message. Both are refused:
//!
//! - before every request and every redirect hop, the URL's host is
//!   resolved and each address checked ([`TargetPolicy::check`]);
//! - the HTTP clients resolve names through [`GuardedResolver`], which drops
//!   link-local addresses, so a name that changes its answer between the
//!   check and the connection (DNS rebinding) still cannot reach them.
//!
//! Loopback stays usable (local rehearsals and tests run their targets
//! there), except the Runtime API's own port. An operator who really needs
//! a link-local target sets `TOLLGATE_ALLOW_LINK_LOCAL_TARGETS=true` on the
//! function; a spec cannot opt in.

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use tollgate_core::config::Env;

/// Environment variable names.
pub mod vars {
    /// `true` lets checks reach link-local addresses (metadata endpoints).
    pub const ALLOW_LINK_LOCAL_TARGETS: &str = "TOLLGATE_ALLOW_LINK_LOCAL_TARGETS";
    /// Set by Lambda: the Runtime API's `host:port`, never a check target.
    pub const RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";
}

/// What checks may not reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// The Lambda Runtime API's `host:port`, when running in Lambda.
    pub runtime_api: Option<String>,
    /// Link-local targets allowed (operator opt-in).
    pub allow_link_local: bool,
}

impl TargetPolicy {
    /// From the process environment.
    pub fn from_env(env: &impl Env) -> Self {
        Self {
            runtime_api: env.get(vars::RUNTIME_API),
            allow_link_local: env
                .get(vars::ALLOW_LINK_LOCAL_TARGETS)
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
        }
    }

    /// Refuses `url` when one of the addresses its host resolves to is the
    /// Runtime API or (without the opt-in) link-local. The error says why
    /// and names the host, never the path or query.
    pub async fn check(&self, url: &Url) -> Result<(), String> {
        let Some(host) = url.host_str() else {
            return Ok(());
        };
        let Some(port) = url.port_or_known_default() else {
            return Ok(());
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            // A name that does not resolve fails later with the DNS error.
            Err(_) => match tokio::net::lookup_host((host, port)).await {
                Ok(found) => found.collect(),
                Err(_) => return Ok(()),
            },
        };
        let runtime = self.runtime_api_addrs().await;
        for addr in addrs {
            if runtime.iter().any(|r| same_listener(*r, addr)) {
                return Err(format!(
                    "{host}:{port} is this function's Lambda Runtime API; checks may not target it"
                ));
            }
            if !self.allow_link_local && is_link_local(addr.ip()) {
                return Err(format!(
                    "{host} resolves to the link-local address {}, where metadata and credential \
                     endpoints live; checks may not target it (set {}=true on the function if \
                     this target is really wanted)",
                    addr.ip(),
                    vars::ALLOW_LINK_LOCAL_TARGETS
                ));
            }
        }
        Ok(())
    }

    async fn runtime_api_addrs(&self) -> Vec<SocketAddr> {
        let Some(api) = self.runtime_api.as_deref() else {
            return Vec::new();
        };
        if let Ok(addr) = api.parse::<SocketAddr>() {
            return vec![addr];
        }
        match tokio::net::lookup_host(api).await {
            Ok(found) => found.collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The resolver for the HTTP clients. In Lambda (the Runtime API is
    /// known and on loopback) it also drops loopback answers for names, so a
    /// name that answers one address to the check and 127.0.0.1 at
    /// connection time (DNS rebinding) cannot reach the Runtime API; nothing
    /// a check should test listens on a Lambda's loopback.
    pub fn resolver(&self) -> GuardedResolver {
        let runtime_on_loopback = self.runtime_api.as_deref().is_some_and(|api| {
            api.parse::<SocketAddr>()
                .map(|a| a.ip().to_canonical().is_loopback())
                .unwrap_or(true)
        });
        GuardedResolver {
            allow_link_local: self.allow_link_local,
            drop_loopback: runtime_on_loopback,
        }
    }
}

/// Whether a connection to `target` reaches the listener at `runtime`: the
/// same port and the same address, where any loopback or unspecified
/// address reaches a loopback listener.
fn same_listener(runtime: SocketAddr, target: SocketAddr) -> bool {
    if runtime.port() != target.port() {
        return false;
    }
    // `::ffff:127.0.0.1` is 127.0.0.1 to a dual-stack socket.
    let (runtime, target) = (runtime.ip().to_canonical(), target.ip().to_canonical());
    let local = |ip: IpAddr| ip.is_loopback() || ip.is_unspecified();
    runtime == target || (local(runtime) && local(target))
}

/// `169.254.0.0/16`, `fe80::/10`, `fd00:ec2::/32` (EC2's IPv6 metadata) and
/// their IPv4-mapped forms.
pub fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4.is_link_local();
            }
            let s = v6.segments();
            (s[0] & 0xffc0) == 0xfe80 || (s[0] == 0xfd00 && s[1] == 0x0ec2)
        }
    }
}

/// Resolves names for the checks' HTTP clients and drops link-local
/// answers (unless allowed), so what [`TargetPolicy::check`] saw cannot be
/// swapped for a metadata endpoint at connection time.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    allow_link_local: bool,
    drop_loopback: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow_link_local;
        let drop_loopback = self.drop_loopback;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let kept: Vec<SocketAddr> = found
                .filter(|a| allow || !is_link_local(a.ip()))
                .filter(|a| {
                    let ip = a.ip().to_canonical();
                    !(drop_loopback && (ip.is_loopback() || ip.is_unspecified()))
                })
                .collect();
            if kept.is_empty() {
                return Err(format!(
                    "{host} resolves only to addresses checks may not reach (link-local, or \
                     loopback inside Lambda)"
                )
                .into());
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(runtime: Option<&str>, allow: bool) -> TargetPolicy {
        TargetPolicy {
            runtime_api: runtime.map(str::to_owned),
            allow_link_local: allow,
        }
    }

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[tokio::test]
    async fn the_runtime_api_is_refused_by_address_and_by_name() {
        let p = policy(Some("127.0.0.1:9001"), false);
        for target in [
            "http://127.0.0.1:9001/2018-06-01/runtime/invocation/next",
            "http://localhost:9001/2018-06-01/runtime/invocation/next",
            "http://0.0.0.0:9001/x",
            "http://[::1]:9001/x",
            "http://[::ffff:127.0.0.1]:9001/x",
        ] {
            let err = p.check(&url(target)).await.expect_err(target);
            assert!(err.contains("Lambda Runtime API"), "{target}: {err}");
            assert!(!err.contains("invocation"), "no path in the error: {err}");
        }
        // Loopback on other ports stays usable (local rehearsals).
        p.check(&url("http://127.0.0.1:8080/health"))
            .await
            .expect("loopback");
        p.check(&url("http://localhost:9002/health"))
            .await
            .expect("loopback by name");
    }

    #[tokio::test]
    async fn link_local_is_refused_unless_allowed() {
        let p = policy(None, false);
        for target in [
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "http://169.254.170.2/v2/credentials/x",
            "http://[fd00:ec2::254]/latest/meta-data/",
            "http://[fe80::1]/",
            "http://[::ffff:169.254.169.254]/",
        ] {
            let err = p.check(&url(target)).await.expect_err(target);
            assert!(err.contains("link-local"), "{target}: {err}");
            assert!(err.contains("TOLLGATE_ALLOW_LINK_LOCAL_TARGETS"), "{err}");
        }
        policy(None, true)
            .check(&url("http://169.254.169.254/latest/meta-data/"))
            .await
            .expect("opted in");
        p.check(&url("https://10.0.0.7/health"))
            .await
            .expect("private");
    }

    #[test]
    fn the_opt_in_is_read_from_the_environment() {
        let p = TargetPolicy::from_env(&[
            (vars::RUNTIME_API, "127.0.0.1:9001"),
            (vars::ALLOW_LINK_LOCAL_TARGETS, "TRUE"),
        ]);
        assert_eq!(p, policy(Some("127.0.0.1:9001"), true));
        assert_eq!(TargetPolicy::from_env(&[("X", "1")]), policy(None, false));
    }

    #[tokio::test]
    async fn the_resolver_drops_link_local_answers() {
        let r = policy(None, false).resolver();
        let name: Name = "localhost".parse().expect("name");
        let addrs: Vec<SocketAddr> = r.resolve(name).await.expect("resolves").collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
        // Inside Lambda a name cannot resolve to loopback (DNS rebinding
        // towards the Runtime API).
        let r = policy(Some("127.0.0.1:9001"), false).resolver();
        let name: Name = "localhost".parse().expect("name");
        assert!(r.resolve(name).await.is_err());
        assert!(is_link_local("169.254.1.1".parse().expect("ip")));
        assert!(is_link_local("fd00:ec2::254".parse().expect("ip")));
        assert!(!is_link_local("fd00:ec3::1".parse().expect("ip")));
    }
}
