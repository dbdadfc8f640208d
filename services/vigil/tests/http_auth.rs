//! API tokens on the services' HTTP APIs, against the real `vigil`
//! binary: `vigil tokens new` writes a private tokens file; with it the
//! audit query API and the dashboard's API answer 401 without a token, 200
//! with one (bearer header, or the cookie the login link sets), 403 for a
//! method the token's scopes do not cover, while `/healthz`, `/readyz` and
//! `/metrics` stay open; without tokens a non-loopback address is refused
//! at start.

mod common;

use std::path::Path;

use common::{run_vigil, VigilProcess};

/// The (read, read+score) tokens of a file `vigil tokens new` wrote.
fn tokens(path: &Path) -> (String, String) {
    let text = std::fs::read_to_string(path).expect("tokens file");
    let token = |scopes: &str| {
        text.lines()
            .filter_map(|l| l.split_once(' '))
            .find(|(s, _)| *s == scopes)
            .map(|(_, t)| t.to_owned())
            .unwrap_or_else(|| panic!("no {scopes} token in {text}"))
    };
    (token("read"), token("read,score"))
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

#[tokio::test]
async fn apis_need_a_token_and_probes_stay_open() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("api-tokens");
    let file_arg = common::path(&file);
    let (code, out, err) = run_vigil(&["tokens", "new", "--out", &file_arg], None)?;
    assert_eq!(code, 0, "{out}{err}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "tokens file mode");
    }
    let (read, score) = tokens(&file);
    // Run again: the file and its tokens are kept.
    let (code, out, _) = run_vigil(&["tokens", "new", "--out", &file_arg], None)?;
    assert_eq!(code, 0);
    assert!(out.contains("kept"), "{out}");
    assert_eq!(tokens(&file), (read.clone(), score.clone()));

    let store = format!("sqlite://{}", common::path(&dir.path().join("audit.db")));
    let audit = VigilProcess::start(&[
        "audit",
        "--api-only",
        "--store",
        &store,
        "--api-tokens-file",
        &file_arg,
    ])
    .await?;
    let dashboard = VigilProcess::start(&[
        "api",
        "--kafka-brokers",
        &format!("127.0.0.1:{}", vigil_testkit::free_port()?),
        "--api-tokens-file",
        &file_arg,
    ])
    .await?;
    let client = no_redirects();
    for (process, path) in [(&audit, "/v1/models"), (&dashboard, "/api/overview")] {
        let url = format!("http://{}{path}", process.http);
        let r = client.get(&url).send().await?;
        assert_eq!(r.status(), 401, "{url} without a token");
        assert!(r.headers().contains_key("www-authenticate"));
        let r = client
            .get(&url)
            .bearer_auth("not-a-valid-token-at-all")
            .send()
            .await?;
        assert_eq!(r.status(), 401, "{url} with a wrong token");
        let r = client.get(&url).bearer_auth(&read).send().await?;
        assert_eq!(r.status(), 200, "{url} with the read token");
        let r = client.get(&url).bearer_auth(&score).send().await?;
        assert_eq!(r.status(), 200, "{url} with the read,score token");
        for open in ["/healthz", "/metrics"] {
            let r = client
                .get(format!("http://{}{open}", process.http))
                .send()
                .await?;
            assert_eq!(r.status(), 200, "{open} stays open");
        }
        // /readyz answers (200 or 503), never 401.
        let r = client
            .get(format!("http://{}/readyz", process.http))
            .send()
            .await?;
        assert!(r.status() == 200 || r.status() == 503, "{}", r.status());
    }

    // The dashboard's login link sets the cookie a browser then sends.
    let login = format!("http://{}/login?token={read}", dashboard.http);
    let r = client.get(&login).send().await?;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/");
    let cookie = r.headers()["set-cookie"].to_str()?.to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().expect("name=value").to_owned();
    let r = client
        .get(format!("http://{}/api/overview", dashboard.http))
        .header("cookie", &pair)
        .send()
        .await?;
    assert_eq!(r.status(), 200, "with the login cookie");
    let r = client
        .get(format!(
            "http://{}/login?token=wrong-token-wrong-token",
            dashboard.http
        ))
        .send()
        .await?;
    assert_eq!(r.status(), 401, "a wrong login link sets nothing");
    assert!(!r.headers().contains_key("set-cookie"));

    // A method the read scope does not cover.
    let r = client
        .post(format!("http://{}/v1/models", audit.http))
        .bearer_auth(&read)
        .send()
        .await?;
    assert_eq!(r.status(), 403, "POST needs the score scope");
    Ok(())
}

#[tokio::test]
async fn a_non_loopback_api_without_tokens_does_not_start() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = format!("sqlite://{}", common::path(&dir.path().join("audit.db")));
    // Refused before binding anything.
    let (code, _, err) = run_vigil(
        &[
            "audit",
            "--api-only",
            "--store",
            &store,
            "--http-addr",
            "0.0.0.0:0",
        ],
        None,
    )?;
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("VIGIL_API_TOKENS_FILE") && err.contains("--insecure-no-auth"),
        "{err}"
    );
    // A world-readable tokens file is refused with its reason.
    let file = dir.path().join("api-tokens");
    std::fs::write(&file, "read aaaaaaaaaaaaaaaaaaaaaaaa\n")?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))?;
        let (code, _, err) = run_vigil(
            &[
                "audit",
                "--api-only",
                "--store",
                &store,
                "--http-addr",
                "127.0.0.1:0",
                "--api-tokens-file",
                &common::path(&file),
            ],
            None,
        )?;
        assert_ne!(code, 0, "{err}");
        assert!(err.contains("readable by others"), "{err}");
    }
    Ok(())
}
