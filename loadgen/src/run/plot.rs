//! SVG plots of a run, written by hand (two simple charts do not justify a
//! plotting library):
//!
//! - `latency.svg`: latency by percentile, the x axis stretched towards the
//!   tail (HdrHistogram's customary view: 1/(1−q) on a log scale), so the
//!   median and p99.9 are equally readable.
//! - `scores.svg`: one panel per plotted device: the score of every
//!   verdict against the model's threshold, injected episodes shaded and
//!   labelled with their kind, flagged records in red.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;

use super::source::Truth;
use super::tally::ScorePoint;

const WIDTH: f64 = 900.0;
const MARGIN_LEFT: f64 = 70.0;
const MARGIN_RIGHT: f64 = 20.0;
const PANEL_HEIGHT: f64 = 160.0;

/// Percentiles shown on the latency plot's x axis.
const TICKS: [(f64, &str); 6] = [
    (0.0, "0%"),
    (0.9, "90%"),
    (0.99, "99%"),
    (0.999, "99.9%"),
    (0.9999, "99.99%"),
    (0.99999, "99.999%"),
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn header(height: f64, title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{x}\" y=\"18\" font-size=\"14\">{title}</text>\n",
        x = MARGIN_LEFT,
        title = escape(title)
    )
}

/// x position of quantile `q` on the stretched axis: log10(1/(1−q)).
fn tail_x(q: f64) -> f64 {
    (1.0 / (1.0 - q.min(0.99999))).log10()
}

/// The latency-by-percentile plot.
pub fn latency_svg(h: &Histogram<u64>, title: &str) -> String {
    let height = 360.0;
    let (top, bottom) = (35.0, height - 40.0);
    let plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let max_x = tail_x(0.99999);
    let max_y = (h.max() as f64).max(1.0);
    let px = |q: f64| MARGIN_LEFT + tail_x(q) / max_x * plot_w;
    let py = |ms: f64| bottom - ms / max_y * (bottom - top);
    let mut svg = header(height, title);
    let mut points = String::new();
    let steps = 400;
    for i in 0..=steps {
        // Evenly spaced on the stretched axis.
        let x = max_x * f64::from(i) / f64::from(steps);
        let q = 1.0 - 10f64.powf(-x);
        let v = h.value_at_quantile(q) as f64;
        let _ = write!(points, "{:.1},{:.1} ", px(q), py(v));
    }
    let _ = writeln!(
        svg,
        "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"{points}\"/>"
    );
    let _ = writeln!(
        svg,
        "<line x1=\"{MARGIN_LEFT}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\" stroke=\"black\"/>\
         <line x1=\"{MARGIN_LEFT}\" y1=\"{top}\" x2=\"{MARGIN_LEFT}\" y2=\"{bottom}\" stroke=\"black\"/>",
        WIDTH - MARGIN_RIGHT
    );
    for (q, label) in TICKS {
        let x = px(q);
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"#ddd\"/>\
             <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
            bottom + 15.0
        );
    }
    for i in 0..=4 {
        let v = max_y * f64::from(i) / 4.0;
        let y = py(v);
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.0}</text>",
            MARGIN_LEFT - 5.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">percentile</text>\
         <text x=\"15\" y=\"{}\" transform=\"rotate(-90 15 {})\" text-anchor=\"middle\">latency (ms)</text>\n</svg>",
        MARGIN_LEFT + plot_w / 2.0,
        height - 8.0,
        (top + bottom) / 2.0,
        (top + bottom) / 2.0
    );
    svg
}

/// Scores of the plotted devices against their injected episodes.
pub fn scores_svg(devices: &[(String, Vec<ScorePoint>)], truth: &[Truth]) -> String {
    let panels = devices.len().max(1) as f64;
    let height = 40.0 + panels * (PANEL_HEIGHT + 20.0);
    let plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let mut svg = header(
        height,
        "anomaly score by record (shaded: injected anomalies; red: flagged)",
    );
    for (n, (device, points)) in devices.iter().enumerate() {
        let top = 35.0 + n as f64 * (PANEL_HEIGHT + 20.0) + 15.0;
        let bottom = top + PANEL_HEIGHT - 15.0;
        let (lo, hi) = points
            .iter()
            .fold((u64::MAX, 0), |(lo, hi), p| (lo.min(p.seq), hi.max(p.seq)));
        if points.is_empty() {
            let _ = writeln!(
                svg,
                "<text x=\"{MARGIN_LEFT}\" y=\"{top}\">{}: no verdicts</text>",
                escape(device)
            );
            continue;
        }
        let span = (hi - lo).max(1) as f64;
        let px = |seq: u64| MARGIN_LEFT + (seq.saturating_sub(lo)) as f64 / span * plot_w;
        let py = |score: f64| bottom - score.clamp(0.0, 1.0) * (bottom - top);
        let _ = writeln!(
            svg,
            "<text x=\"{MARGIN_LEFT}\" y=\"{}\">{} (seq {lo}–{hi})</text>",
            top - 3.0,
            escape(device)
        );
        for t in truth.iter().filter(|t| &t.device_id == device) {
            if t.last_seq < lo || t.first_seq > hi {
                continue;
            }
            let x0 = px(t.first_seq.max(lo));
            let x1 = px(t.last_seq.min(hi) + 1).max(x0 + 2.0);
            let _ = writeln!(
                svg,
                "<rect x=\"{x0:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#ffbb78\" opacity=\"0.6\"/>\
                 <text x=\"{x0:.1}\" y=\"{:.1}\" font-size=\"9\">{}</text>",
                x1 - x0,
                bottom - top,
                top + 10.0,
                escape(&t.kind)
            );
        }
        let mut line = String::new();
        for p in points {
            let _ = write!(line, "{:.1},{:.1} ", px(p.seq), py(p.score));
        }
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1\" points=\"{line}\"/>"
        );
        if let Some(threshold) = points.last().map(|p| p.threshold) {
            let y = py(threshold);
            let _ = writeln!(
                svg,
                "<line x1=\"{MARGIN_LEFT}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>",
                WIDTH - MARGIN_RIGHT
            );
        }
        for p in points.iter().filter(|p| p.anomaly) {
            let _ = writeln!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"#d62728\"/>",
                px(p.seq),
                py(p.score)
            );
        }
        let _ = writeln!(
            svg,
            "<rect x=\"{MARGIN_LEFT}\" y=\"{top}\" width=\"{plot_w}\" height=\"{:.1}\" fill=\"none\" stroke=\"black\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">1</text>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">0</text>",
            bottom - top,
            MARGIN_LEFT - 5.0,
            top + 4.0,
            MARGIN_LEFT - 5.0,
            bottom
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// Writes `latency.svg` and `scores.svg` into `dir`.
pub fn write(
    dir: &Path,
    latency: &Histogram<u64>,
    devices: &[(String, Vec<ScorePoint>)],
    truth: &[Truth],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = [
        (
            "latency.svg",
            latency_svg(latency, "publish → verdict latency by percentile"),
        ),
        ("scores.svg", scores_svg(devices, truth)),
    ];
    for (name, svg) in files {
        let path = dir.join(name);
        std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_well_formed_svg() {
        let mut h = Histogram::<u64>::new_with_max(3_600_000, 3).expect("histogram");
        for v in 1..=100 {
            h.record(v).expect("in range");
        }
        let svg = latency_svg(&h, "a <title>");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &lt;title&gt;"));
        assert!(svg.contains("99.9%"));

        let points: Vec<ScorePoint> = (1..=50)
            .map(|seq| ScorePoint {
                seq,
                event_ts: seq,
                score: if seq == 20 { 0.9 } else { 0.1 },
                threshold: 0.5,
                anomaly: seq == 20,
            })
            .collect();
        let truth = [Truth {
            device_id: "d".into(),
            kind: "spike".into(),
            metric: None,
            first_seq: 20,
            last_seq: 21,
            start_ts: 0,
            end_ts: 0,
        }];
        let svg = scores_svg(&[("d".into(), points), ("e".into(), Vec::new())], &truth);
        assert_eq!(svg.matches("<circle").count(), 1, "one flagged record");
        assert!(svg.contains(">spike<"));
        assert!(svg.contains("e: no verdicts"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
