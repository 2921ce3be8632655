//! The charts of BENCHMARKS.md, drawn from `bench/results/latest.json` (`bench-tool charts
//! RESULTS_JSON OUT_DIR`):
//!
//! - `latency.png`: the latency distribution of every scenario (latency at each
//!   percentile, on a "nines" axis so the tail is as wide as the middle);
//! - `flash-sale.png`: the flash sale second by second: reservations, payments, expiries,
//!   refused attempts, stale sightings, and the read model's staleness;
//! - `ceilings.png`: each endpoint's throughput as a share of its ceiling measured in the
//!   same run, against its target.
//!
//! Text needs a TrueType font: `BENCH_FONT`, else DejaVu Sans or Liberation Sans where
//! Debian puts them (fonts-dejavu-core, which Chromium pulls in).

use std::path::Path;

use plotters::prelude::*;
use serde_json::Value;

const FONTS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// One panel of the flash-sale chart: its title, its y label, and its named series.
type Panel<'a> = (&'a str, &'a str, Vec<(&'a str, Vec<(f64, f64)>)>);

fn register_font() -> anyhow::Result<()> {
    let path = std::env::var("BENCH_FONT")
        .ok()
        .or_else(|| FONTS.iter().find(|p| Path::new(p).exists()).map(|p| (*p).to_owned()))
        .ok_or_else(|| anyhow::anyhow!("no TrueType font found for the charts: set BENCH_FONT to a .ttf file"))?;
    // plotters keeps registered fonts for the life of the process.
    let bytes: &'static [u8] = Box::leak(std::fs::read(&path)?.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("{path} is not a font plotters can read"))
}

fn fail<E: std::fmt::Debug>(err: E) -> anyhow::Error {
    anyhow::anyhow!("drawing failed: {err:?}")
}

/// Draws every chart the results have data for into `out`.
pub fn draw(results: &Path, out: &Path) -> anyhow::Result<()> {
    register_font()?;
    let results: Value = serde_json::from_str(&std::fs::read_to_string(results)?)?;
    std::fs::create_dir_all(out)?;
    let mut written = Vec::new();
    if latency(&results, &out.join("latency.png"))? {
        written.push("latency.png");
    }
    if flash_sale(&results, &out.join("flash-sale.png"))? {
        written.push("flash-sale.png");
    }
    if ceilings(&results, &out.join("ceilings.png"))? {
        written.push("ceilings.png");
    }
    println!("{}", serde_json::json!({ "charts": written }));
    Ok(())
}

/// A percentile on the "nines" axis: 0 at 0 %, 1 at 90 %, 2 at 99 %, 3 at 99.9 %...
fn nines(percentile: f64) -> f64 {
    if percentile >= 100.0 { 4.5 } else { -(1.0 - percentile / 100.0).log10() }
}

fn nines_label(x: &f64) -> String {
    match (x * 10.0).round() as i64 {
        0 => "0%".into(),
        3 => "50%".into(),
        10 => "90%".into(),
        20 => "99%".into(),
        30 => "99.9%".into(),
        40 => "99.99%".into(),
        45 => "max".into(),
        _ => String::new(),
    }
}

fn points(series: &Value) -> Vec<(f64, f64)> {
    series
        .as_array()
        .map(|a| a.iter().filter_map(|p| Some((nines(p[0].as_f64()?), p[1].as_f64()?.max(0.01)))).collect::<Vec<_>>())
        .unwrap_or_default()
}

fn latency(results: &Value, path: &Path) -> anyhow::Result<bool> {
    let scenarios = &results["scenarios"];
    let baselines = &results["baselines"];
    let http: Vec<(&str, &Value)> = [
        ("hello (HTTP ceiling)", &baselines["hello"]),
        ("GET currentuser", &scenarios["currentuser"]),
        ("GET /api/tickets/{id}", &scenarios["get_ticket"]),
        ("GET /api/tickets", &scenarios["list_tickets"]),
        ("POST /api/tickets", &scenarios["create_ticket"]),
        ("POST /api/orders", &scenarios["create_order"]),
        ("POST signup", &scenarios["signup"]),
        ("POST refresh", &scenarios["refresh"]),
        ("GET query ?limit=12", &scenarios["query_home"]),
        ("GET / (home page)", &scenarios["home_page"]),
    ]
    .into_iter()
    .filter(|(_, s)| s["percentiles_ms"].is_array())
    .collect();
    let sale = &scenarios["flash_sale"];
    let feed_sale = &scenarios["flash_sale_feed"];
    let flood = &scenarios["signup_flood"]["phases"];
    let events: Vec<(&str, &Value)> = [
        ("flash sale: POST /api/orders", &sale["percentiles_ms"]),
        ("flash sale: 201 → query reserved", &sale["staleness"]["percentiles_ms"]),
        ("flash sale (feed): POST /api/orders", &feed_sale["percentiles_ms"]),
        ("feed: change → event, 1 stream", &scenarios["feed_latency"]["1"]["percentiles_ms"]),
        ("feed: change → event, 1000 streams", &scenarios["feed_latency"]["1000"]["percentiles_ms"]),
        ("currentuser, no flood", &flood["none"]["currentuser"]["percentiles_ms"]),
        ("currentuser, sign-up flood", &flood["many_addresses"]["currentuser"]["percentiles_ms"]),
    ]
    .into_iter()
    .filter(|(_, s)| s.as_array().is_some_and(|a| !a.is_empty()))
    .collect();
    if http.is_empty() && events.is_empty() {
        return Ok(false);
    }
    let root = BitMapBackend::new(path, (1600, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(fail)?;
    let (left, right) = root.split_horizontally(800);
    let panels = [
        (
            "HTTP endpoints (wrk, 32 connections)",
            http.iter().map(|(n, s)| (*n, points(&s["percentiles_ms"]))).collect::<Vec<_>>(),
        ),
        ("Flash sale, live feed, sign-up flood", events.iter().map(|(n, s)| (*n, points(s))).collect::<Vec<_>>()),
    ];
    for (area, (title, series)) in [left, right].iter().zip(panels) {
        let max = series.iter().flat_map(|(_, p)| p.iter().map(|p| p.1)).fold(1.0_f64, f64::max);
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..4.6f64, (0.05f64..max * 2.0).log_scale())
            .map_err(fail)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency, ms (log scale)")
            .x_labels(47)
            .x_label_formatter(&nines_label)
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(fail)?;
        for (i, (name, points)) in series.into_iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(fail)?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled()))).map_err(fail)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(fail)?;
    }
    root.present().map_err(fail)?;
    Ok(true)
}

fn column(timeline: &[Value], key: &str) -> Vec<(f64, f64)> {
    timeline.iter().filter_map(|s| Some((s["second"].as_f64()? + 0.5, s[key].as_f64()?))).collect()
}

fn flash_sale(results: &Value, path: &Path) -> anyhow::Result<bool> {
    let sale = &results["scenarios"]["flash_sale"];
    let Some(timeline) = sale["timeline"].as_array().filter(|t| !t.is_empty()) else { return Ok(false) };
    let feed_timeline = results["scenarios"]["flash_sale_feed"]["timeline"].as_array().cloned().unwrap_or_default();
    let seconds = timeline.len().max(feed_timeline.len()) as f64;
    let root = BitMapBackend::new(path, (1400, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(fail)?;
    let title = format!(
        "Flash sale: {} tickets, {} buyers at {} at a time ({}% let it expire, {} s window)",
        sale["tickets"],
        sale["buyers"],
        sale["concurrency"],
        (sale["expire_share"].as_f64().unwrap_or(0.0) * 100.0).round(),
        sale["window_seconds"]
    );
    let root = root.titled(&title, ("sans-serif", 24)).map_err(fail)?;
    let areas = root.split_evenly((3, 1));
    let marks = [("sold out", sale["sold_out_seconds"].as_f64()), ("all paid", sale["all_paid_seconds"].as_f64())];

    let panels: [Panel<'_>; 3] = [
        (
            "reservations, payments and expiries per second (buyers polling the listing)",
            "count",
            vec![
                ("reservations (201)", column(timeline, "reserved")),
                ("payments", column(timeline, "paid")),
                ("expiries", column(timeline, "expired")),
            ],
        ),
        (
            // Thousands per second: on the first panel's scale the sale's own lines vanish.
            "attempts refused, stale sightings and looks at the listing, per second",
            "count",
            vec![
                ("refused: Ticket is already reserved (polling)", column(timeline, "refused")),
                ("stale sightings: shown available, already reserved (polling)", column(timeline, "stale_seen")),
                ("looks at the listing (polling)", column(timeline, "looks")),
                ("refused (following the feed)", column(&feed_timeline, "refused")),
                ("looks (following the feed)", column(&feed_timeline, "looks")),
            ],
        ),
        (
            "query staleness: 201 → read model says reserved, p99 per second",
            "ms",
            vec![
                ("polling run", column(timeline, "staleness_p99_ms")),
                ("feed run", column(&feed_timeline, "staleness_p99_ms")),
            ],
        ),
    ];
    for (area, (caption, unit, series)) in areas.iter().zip(panels) {
        let max = series.iter().flat_map(|(_, p)| p.iter().map(|p| p.1)).fold(1.0_f64, f64::max) * 1.15;
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..seconds, 0f64..max)
            .map_err(fail)?;
        chart
            .configure_mesh()
            .x_desc("seconds since the sale opened")
            .y_desc(unit)
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(fail)?;
        for (i, (name, points)) in series.into_iter().enumerate() {
            if points.is_empty() {
                continue;
            }
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(fail)?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        for (label, at) in marks {
            if let Some(at) = at {
                chart
                    .draw_series(std::iter::once(PathElement::new(vec![(at, 0.0), (at, max)], BLACK.mix(0.5))))
                    .map_err(fail)?;
                // At the foot of the line: the legend sits at the top right, where the last
                // mark ("all paid") falls.
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!(" {label}"),
                        (at, max * 0.1),
                        ("sans-serif", 13).into_font().color(&BLACK.mix(0.8)),
                    )))
                    .map_err(fail)?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(fail)?;
    }
    root.present().map_err(fail)?;
    Ok(true)
}

fn ceilings(results: &Value, path: &Path) -> anyhow::Result<bool> {
    let Some(ratios) = results["ratios"].as_array().filter(|r| !r.is_empty()) else { return Ok(false) };
    let rows: Vec<(String, f64, f64)> = ratios
        .iter()
        .filter_map(|r| Some((r["label"].as_str()?.to_owned(), r["ratio"].as_f64()?, r["target"].as_f64()?)))
        .filter(|r| r.1.is_finite())
        .collect();
    let height = 120 + 60 * rows.len() as u32;
    let root = BitMapBackend::new(path, (1400, height)).into_drawing_area();
    root.fill(&WHITE).map_err(fail)?;
    let max = rows.iter().map(|r| r.1.max(r.2)).fold(1.0_f64, f64::max) * 1.1;
    let n = rows.len() as f64;
    let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption("Throughput as a share of its ceiling, same run (| = target)", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(520)
        .build_cartesian_2d(0f64..max, 0f64..n)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(rows.len() * 2 + 1)
        .y_label_formatter(&|y| {
            let i = y.floor() as usize;
            if (y - y.floor() - 0.5).abs() < 0.01 && i < labels.len() {
                labels[labels.len() - 1 - i].clone()
            } else {
                String::new()
            }
        })
        .x_label_formatter(&|x| format!("{:.0}%", x * 100.0))
        .x_desc("share of the ceiling")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(fail)?;
    for (i, (_, ratio, target)) in rows.iter().enumerate() {
        let y = n - 1.0 - i as f64;
        let color = if ratio >= target { RGBColor(46, 139, 87) } else { RGBColor(205, 92, 92) };
        chart
            .draw_series(std::iter::once(Rectangle::new([(0.0, y + 0.2), (*ratio, y + 0.8)], color.filled())))
            .map_err(fail)?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(*target, y + 0.1), (*target, y + 0.9)],
                BLACK.stroke_width(3),
            )))
            .map_err(fail)?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{:.0}%", ratio * 100.0),
                (ratio + max * 0.01, y + 0.35),
                ("sans-serif", 15),
            )))
            .map_err(fail)?;
    }
    root.present().map_err(fail)?;
    Ok(true)
}
