//! Bearer tokens for a role's own HTTP routes (the audit query API, the
//! dashboard and its live feed, `POST /v1/score`, push's rollout view).
//! `/healthz`, `/readyz` and `/metrics` stay open on the same address, so
//! probes and Prometheus need no secret (they reveal no telemetry).
//!
//! Tokens live in a file named by `--api-tokens-file` /
//! `VIGIL_API_TOKENS_FILE`, one per line with its scopes:
//!
//! ```text
//! # scopes     token
//! read         Xh3…   (GET: verdicts, incidents, the dashboard)
//! read,score   Qm9…   (also POST /v1/score)
//! ```
//!
//! A request presents a token as `Authorization: Bearer <token>` or, for
//! a browser (the dashboard's live feed cannot set headers), in the
//! `vigil_token` cookie that `GET /login?token=<token>` sets. Tokens are
//! compared in constant time. GET and HEAD need `read`; any other method
//! needs `score`. Without a tokens file a role bound to a loopback address
//! runs open (development); bound to any other address it refuses to start
//! unless `--insecure-no-auth` says so.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

/// The cookie `/login` sets.
pub const COOKIE: &str = "vigil_token";
/// Shortest token accepted (characters).
pub const MIN_TOKEN_CHARS: usize = 16;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes {
    /// GET and HEAD of every protected route.
    pub read: bool,
    /// Every other method (`POST /v1/score`).
    pub score: bool,
}

/// Why a tokens file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("reading the API tokens file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("API tokens file {path} is readable by others (mode {mode:o}); chmod o-rwx it")]
    Shared { path: PathBuf, mode: u32 },
    #[error("API tokens file {path}, line {line}: {why}")]
    Line {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error("API tokens file {path} holds no token")]
    Empty { path: PathBuf },
}

/// The tokens a role accepts.
#[derive(Clone)]
pub struct Tokens {
    entries: Vec<(Vec<u8>, Scopes)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.entries.len())
    }
}

impl Tokens {
    /// Reads and checks a tokens file (not readable by others; every line
    /// `SCOPES TOKEN`, blank lines and `#` comments allowed).
    pub fn load(path: &Path) -> Result<Self, TokenError> {
        let read = |source| TokenError::Read {
            path: path.to_owned(),
            source,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(path).map_err(read)?.permissions().mode() & 0o777;
            if mode & 0o007 != 0 {
                return Err(TokenError::Shared {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        Self::parse(&text).map_err(|e| match e {
            TokenError::Line { line, why, .. } => TokenError::Line {
                path: path.to_owned(),
                line,
                why,
            },
            TokenError::Empty { .. } => TokenError::Empty {
                path: path.to_owned(),
            },
            other => other,
        })
    }

    /// Parses a tokens file's text.
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let bad = |why: String| TokenError::Line {
                path: PathBuf::new(),
                line: i + 1,
                why,
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(scopes), Some(token), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(bad(
                    "expected `SCOPES TOKEN` (e.g. `read,score 3q2…`)".into()
                ));
            };
            let mut parsed = Scopes::default();
            for scope in scopes.split(',') {
                match scope {
                    "read" => parsed.read = true,
                    "score" => parsed.score = true,
                    other => {
                        return Err(bad(format!("unknown scope {other:?} (known: read, score)")))
                    }
                }
            }
            if token.chars().count() < MIN_TOKEN_CHARS
                || !token.chars().all(|c| c.is_ascii_graphic())
            {
                return Err(bad(format!(
                    "a token is at least {MIN_TOKEN_CHARS} printable ASCII characters"
                )));
            }
            entries.push((token.as_bytes().to_vec(), parsed));
        }
        if entries.is_empty() {
            return Err(TokenError::Empty {
                path: PathBuf::new(),
            });
        }
        Ok(Self { entries })
    }

    /// The scopes of `presented`, comparing it with every configured token
    /// in constant time (no early exit).
    pub fn scopes(&self, presented: &[u8]) -> Option<Scopes> {
        let mut found: Option<Scopes> = None;
        for (token, scopes) in &self.entries {
            let same = token.len() == presented.len() && bool::from(token.ct_eq(presented));
            if same {
                found = Some(*scopes);
            }
        }
        found
    }
}

/// A new random token (URL-safe base64 of 192 bits).
pub fn new_token() -> String {
    use base64::Engine as _;
    use rand::Rng as _;
    let bytes: [u8; 24] = rand::thread_rng().gen();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Who may call a role's own routes.
#[derive(Debug, Clone)]
pub enum Access {
    /// Anyone (loopback without tokens, or `--insecure-no-auth`).
    Open,
    /// Holders of these tokens.
    Tokens(Arc<Tokens>),
}

/// The access policy for a server on `addr` (see the module docs).
pub fn access(
    addr: SocketAddr,
    tokens_file: Option<&Path>,
    insecure_no_auth: bool,
) -> anyhow::Result<Access> {
    if let Some(path) = tokens_file {
        return Ok(Access::Tokens(Arc::new(Tokens::load(path)?)));
    }
    if addr.ip().is_loopback() {
        return Ok(Access::Open);
    }
    if insecure_no_auth {
        tracing::warn!(%addr, "serving the API without authentication (--insecure-no-auth)");
        return Ok(Access::Open);
    }
    anyhow::bail!(
        "the HTTP server on {addr} is not on a loopback address and no API tokens are \
         configured: set VIGIL_API_TOKENS_FILE (--api-tokens-file; `vigil tokens new` writes \
         one), or pass --insecure-no-auth to serve the API to anyone who can reach it"
    )
}

/// `routes` behind `access`; with tokens, also `GET /login`.
pub fn protect(routes: Router, access: &Access) -> Router {
    match access {
        Access::Open => routes,
        Access::Tokens(tokens) => routes
            .layer(axum::middleware::from_fn_with_state(
                tokens.clone(),
                authenticate,
            ))
            .merge(
                Router::new()
                    .route("/login", get(login))
                    .with_state(tokens.clone()),
            ),
    }
}

/// The token a request presents: the bearer header first, then the cookie.
fn presented(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    bearer.or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value)
    })
}

fn refuse(status: StatusCode, reason: &'static str, error: &str) -> Response {
    let body = Json(serde_json::json!({ "error": error, "reason": reason }));
    let mut response = (status, body).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"vigil\""),
        );
    }
    response
}

async fn authenticate(State(tokens): State<Arc<Tokens>>, request: Request, next: Next) -> Response {
    let Some(scopes) = presented(request.headers()).and_then(|t| tokens.scopes(t.as_bytes()))
    else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "a valid API token is required (Authorization: Bearer <token>)",
        );
    };
    let reading = matches!(*request.method(), Method::GET | Method::HEAD);
    if (reading && !scopes.read) || (!reading && !scopes.score) {
        return refuse(
            StatusCode::FORBIDDEN,
            "scope",
            if reading {
                "this token lacks the read scope"
            } else {
                "this token lacks the score scope"
            },
        );
    }
    next.run(request).await
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    token: String,
}

/// Sets the cookie for a valid token and sends the browser to `/`, so the
/// token leaves the address bar.
async fn login(State(tokens): State<Arc<Tokens>>, Query(q): Query<LoginQuery>) -> Response {
    if tokens.scopes(q.token.as_bytes()).is_none() {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "the login link's token is not valid",
        );
    }
    let cookie = format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", q.token);
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/".to_owned()),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tokens_file_names_scopes_per_line() {
        let t = Tokens::parse(
            "# comment\n\nread aaaaaaaaaaaaaaaaaaaa\nread,score bbbbbbbbbbbbbbbbbbbb\n",
        )
        .expect("parses");
        assert_eq!(
            t.scopes(b"aaaaaaaaaaaaaaaaaaaa"),
            Some(Scopes {
                read: true,
                score: false
            })
        );
        assert_eq!(
            t.scopes(b"bbbbbbbbbbbbbbbbbbbb"),
            Some(Scopes {
                read: true,
                score: true
            })
        );
        assert_eq!(t.scopes(b"aaaaaaaaaaaaaaaaaaab"), None);
        assert_eq!(t.scopes(b"aaaa"), None);
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, why) in [
            ("read", "expected `SCOPES TOKEN`"),
            ("write aaaaaaaaaaaaaaaaaaaa", "unknown scope \"write\""),
            ("read short", "at least 16"),
            ("read aaaaaaaaaaaaaaaaaaaa extra", "expected `SCOPES TOKEN`"),
        ] {
            let err = Tokens::parse(&format!("# one\n{text}\n"))
                .expect_err(text)
                .to_string();
            assert!(err.contains("line 2") && err.contains(why), "{text}: {err}");
        }
        assert!(matches!(
            Tokens::parse("# none\n"),
            Err(TokenError::Empty { .. })
        ));
    }

    #[test]
    fn without_tokens_only_loopback_runs_open() {
        let open = |addr: &str, insecure| access(addr.parse().expect("addr"), None, insecure);
        assert!(matches!(open("127.0.0.1:8080", false), Ok(Access::Open)));
        assert!(matches!(open("[::1]:8080", false), Ok(Access::Open)));
        let err = open("0.0.0.0:8080", false)
            .expect_err("refused")
            .to_string();
        assert!(err.contains("VIGIL_API_TOKENS_FILE"), "{err}");
        assert!(matches!(open("0.0.0.0:8080", true), Ok(Access::Open)));
    }

    #[cfg(unix)]
    #[test]
    fn a_tokens_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens");
        std::fs::write(&path, "read aaaaaaaaaaaaaaaaaaaa\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = Tokens::load(&path).expect_err("world-readable").to_string();
        assert!(err.contains("readable by others"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        Tokens::load(&path).expect("group-readable is fine (Kubernetes fsGroup)");
    }

    #[test]
    fn new_tokens_are_long_and_distinct() {
        let (a, b) = (new_token(), new_token());
        assert!(a.len() >= 32 && a != b);
        Tokens::parse(&format!("read {a}")).expect("a new token parses");
    }
}
