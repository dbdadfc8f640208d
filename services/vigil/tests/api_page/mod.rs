//! The dashboard page itself in headless Chromium (Debian's `chromium` +
//! `chromium-driver`, driven over WebDriver with fantoccini), against the
//! stack and fixtures of the JSON-view test (`api.rs`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vigil_testkit::clients::eventually;

use vigil_schemas::{Message, ScoredAt};

use super::{
    audit_store, incidents, verdict, Stack, EDGE_DEVICE, HISTORY, OPEN_INCIDENT, RESOLVED_INCIDENT,
};

/// A child process killed when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Where screenshots go: `$VIGIL_TEST_ARTIFACTS`, else `test-artifacts/`
/// in the cargo target directory.
fn artifact_dir() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("VIGIL_TEST_ARTIFACTS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .map(|target| target.join("test-artifacts"))
            .unwrap_or_else(|| PathBuf::from("test-artifacts")),
    };
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_page_in_headless_chromium() -> anyhow::Result<()> {
    use fantoccini::ClientBuilder;

    let (Some(chromium), Some(driver)) = (
        find_program(&["chromium", "chromium-browser"]),
        find_program(&["chromedriver"]),
    ) else {
        println!(
            "SKIPPED dashboard_page_in_headless_chromium: chromium and chromedriver are not \
             installed (apt-get install chromium chromium-driver; scripts/setup.sh does)"
        );
        return Ok(());
    };

    let audit = tempfile::tempdir()?;
    let store_uri = audit_store(audit.path(), Vec::new(), incidents())?;
    let stack = Stack::start(&["--audit-store", &store_uri]).await?;
    stack.seed().await?;
    stack.wait_seeded().await?;

    let port = vigil_testkit::free_port()?;
    let profile = tempfile::tempdir()?;
    let driver_log = profile.path().join("chromedriver.log");
    let _driver = Guard(
        Command::new(&driver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", driver_log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let driver_url = format!("http://127.0.0.1:{port}");
    eventually("chromedriver answers", Duration::from_secs(20), || async {
        reqwest::get(format!("{driver_url}/status")).await.is_ok()
    })
    .await?;

    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--window-size=1440,1000",
                format!("--user-data-dir={}", profile.path().join("profile").display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let browser = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver_url)
        .await
        .map_err(|e| {
            let log = std::fs::read_to_string(&driver_log).unwrap_or_default();
            let tail: String = log.lines().rev().take(30).collect::<Vec<_>>().join("\n");
            anyhow::anyhow!("starting headless chromium: {e}\n{tail}")
        })?;
    let outcome = drive(&browser, &stack).await;
    let closed = browser.close().await;
    outcome.map_err(|e| stack.api.failure(e))?;
    closed?;
    Ok(())
}

/// Finds `css` (waiting up to 20 s) and applies `read` to it; when the
/// read fails (the dashboard redraws its lists and charts on every refresh,
/// so an element found a moment ago may have been replaced: "stale element
/// reference"), finds it again, at most five times.
async fn read_fresh<T, F, Fut>(
    browser: &fantoccini::Client,
    css: &str,
    read: F,
) -> anyhow::Result<T>
where
    F: Fn(fantoccini::elements::Element) -> Fut,
    Fut: std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
{
    let mut last = None;
    for _ in 0..5 {
        let element = browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(fantoccini::Locator::Css(css))
            .await?;
        match read(element).await {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(|| anyhow::anyhow!("{css}: not read"), anyhow::Error::from))
}

async fn drive(browser: &fantoccini::Client, stack: &Stack) -> anyhow::Result<()> {
    use fantoccini::Locator;
    let wait = Duration::from_secs(20);
    let base = format!("http://{}/", stack.api.http);
    browser.goto(&base).await?;

    // The page loads and lists every device.
    browser
        .wait()
        .at_most(wait)
        .for_element(Locator::Css("#devices tr[data-device='pump-0001']"))
        .await?;
    let rows = browser.find_all(Locator::Css("#devices tbody tr")).await?;
    assert_eq!(rows.len(), 4, "the fleet table lists the four devices");
    // The seeded anomalies are in the feed.
    browser
        .wait()
        .at_most(wait)
        .for_element(Locator::Css("#feed li[data-device='edge-0001']"))
        .await?;

    // The live feed is connected; an anomaly produced now appears in it
    // without a reload.
    browser
        .wait()
        .at_most(wait)
        .for_element(Locator::Css("body[data-live='on']"))
        .await?;
    let live = verdict("pump-0002", 88, true, ScoredAt::Cloud);
    stack
        .send("vigil.anomalies", "pump-0002", &live.encode()?)
        .await?;
    let text = read_fresh(
        browser,
        "#feed li[data-device='pump-0002'][data-seq='88']",
        |item| async move { item.text().await },
    )
    .await?;
    assert!(
        text.contains("0.93"),
        "the feed item shows the score: {text}"
    );
    // The Fleet page counts the open incidents.
    let open = read_fresh(
        browser,
        "#open-incidents",
        |a| async move { a.text().await },
    )
    .await?;
    assert_eq!(open.trim(), "1", "open incidents on the Fleet page");
    let dir = artifact_dir()?;
    let fleet_png = dir.join("dashboard-fleet.png");
    std::fs::write(&fleet_png, browser.screenshot().await?)?;
    println!("screenshot: {}", fleet_png.display());

    // Clicking a device opens its view, with the score chart drawn from
    // its verdicts and anomaly markers on it.
    read_fresh(
        browser,
        "#devices tr[data-device='pump-0002'] a",
        |link| async move { link.click().await.map(|_| ()) },
    )
    .await?;
    let points: u64 = read_fresh(browser, "svg#score-chart", |chart| async move {
        chart.attr("data-points").await
    })
    .await?
    .unwrap_or_default()
    .parse()
    .unwrap_or(0);
    assert!(
        points >= HISTORY,
        "the chart has the device's verdicts: {points}"
    );
    let markers = browser
        .find_all(Locator::Css("svg#score-chart circle.marker"))
        .await?;
    assert!(
        markers.len() >= 2,
        "anomaly markers on the chart: {}",
        markers.len()
    );
    let paths = browser
        .find_all(Locator::Css("svg#score-chart path"))
        .await?;
    assert!(paths.len() >= 2, "score and threshold lines");
    let title = read_fresh(browser, "#device-title", |t| async move { t.text().await }).await?;
    assert!(title.contains("pump-0002"), "{title}");
    browser
        .wait()
        .at_most(wait)
        .for_element(Locator::Css(".metrics .metric svg"))
        .await?;
    let device_png = dir.join("dashboard-device.png");
    std::fs::write(&device_png, browser.screenshot().await?)?;
    println!("screenshot: {}", device_png.display());

    // The edge device's page lists its incident.
    browser
        .goto(&format!("{base}#/device/{EDGE_DEVICE}"))
        .await?;
    let row = read_fresh(
        browser,
        &format!("#device-incidents tr[data-incident='{OPEN_INCIDENT}']"),
        |tr| async move { tr.text().await },
    )
    .await?;
    assert!(row.contains("succeeded"), "the device's incident: {row}");

    // The Incidents page: the open one (with its command's result) and
    // the resolved one, each with device, severity, times, model, top
    // metrics and actions; a click opens an incident's timeline.
    browser.goto(&format!("{base}#/incidents")).await?;
    let open_row = read_fresh(
        browser,
        &format!("#open-incidents-table tr[data-incident='{OPEN_INCIDENT}']"),
        |tr| async move { tr.text().await },
    )
    .await?;
    for shown in [
        EDGE_DEVICE,
        "high",
        "default v1",
        "temperature_c 70%",
        "command throttle",
        "succeeded",
        "exit 0",
    ] {
        assert!(
            open_row.contains(shown),
            "{shown:?} not in the open incident's row: {open_row}"
        );
    }
    let resolved_row = read_fresh(
        browser,
        &format!("#resolved-incidents-table tr[data-incident='{RESOLVED_INCIDENT}']"),
        |tr| async move { tr.text().await },
    )
    .await?;
    for shown in ["pump-0001", "resolved", "webhook pager", "delivered"] {
        assert!(
            resolved_row.contains(shown),
            "{shown:?} not in the resolved incident's row: {resolved_row}"
        );
    }
    let listed = browser.find_all(Locator::Css("tr.incident")).await?;
    assert_eq!(listed.len(), 2, "each incident listed once");
    read_fresh(
        browser,
        &format!("tr[data-incident='{OPEN_INCIDENT}'] td.mono"),
        |td| async move { td.click().await.map(|_| ()) },
    )
    .await?;
    let steps = read_fresh(
        browser,
        &format!("tr[data-timeline='{OPEN_INCIDENT}']"),
        |tr| async move { tr.text().await },
    )
    .await?;
    for shown in [
        "opened on record #30",
        "command throttle-edge",
        "result of throttle-edge: ok (exit 0",
    ] {
        assert!(
            steps.contains(shown),
            "{shown:?} not in the timeline: {steps}"
        );
    }
    let incidents_png = dir.join("dashboard-incidents.png");
    std::fs::write(&incidents_png, browser.screenshot().await?)?;
    println!("screenshot: {}", incidents_png.display());

    // The models and pipeline views render too.
    browser.goto(&format!("{base}#/models")).await?;
    browser
        .wait()
        .at_most(wait)
        .for_element(Locator::Css("#models tr[data-version='1']"))
        .await?;
    let models_png = dir.join("dashboard-models.png");
    std::fs::write(&models_png, browser.screenshot().await?)?;
    println!("screenshot: {}", models_png.display());
    browser.goto(&format!("{base}#/pipeline")).await?;
    browser
        .wait()
        .at_most(wait)
        .for_element(Locator::Css("#dlq"))
        .await?;
    let pipeline_png = dir.join("dashboard-pipeline.png");
    std::fs::write(&pipeline_png, browser.screenshot().await?)?;
    println!("screenshot: {}", pipeline_png.display());
    Ok(())
}
