//! SVG plots of a report: throughput per backend, durable-append scaling
//! by writers, and page latency against store size.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::backends::Backend;
use crate::report::Report;
use crate::run::PageCost;

/// What drawing one plot gives.
type PlotResult = Result<(), Box<dyn std::error::Error>>;
/// A function that draws one plot of a report into a file.
type Plot = fn(&Report, &Path) -> PlotResult;

/// One colour per backend, by its place in report order.
fn color(backend: Backend) -> RGBColor {
    const PALETTE: [RGBColor; 8] = [
        RGBColor(0x4c, 0x72, 0xb0),
        RGBColor(0xdd, 0x84, 0x52),
        RGBColor(0x55, 0xa8, 0x68),
        RGBColor(0xc4, 0x4e, 0x52),
        RGBColor(0x93, 0x78, 0x60),
        RGBColor(0x81, 0x72, 0xb3),
        RGBColor(0xda, 0x8b, 0xc3),
        RGBColor(0x8c, 0x8c, 0x8c),
    ];
    PALETTE[backend.rank() % PALETTE.len()]
}

/// Draws the three plots into `dir`: `throughput.svg`, `scaling.svg` and
/// `page-latency.svg`.
pub fn draw(report: &Report, dir: &Path) -> Result<(), String> {
    let plots: [(&str, Plot); 3] = [
        ("throughput.svg", throughput),
        ("scaling.svg", scaling),
        ("page-latency.svg", page_latency),
    ];
    for (name, plot) in plots {
        let path = dir.join(name);
        plot(report, &path).map_err(|e| format!("drawing {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Draws the series labels of `chart` in a box at `position`.
fn legend<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    position: SeriesLabelPosition,
) -> PlotResult {
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .position(position)
        .draw()?;
    Ok(())
}

/// Workload 1 as grouped bars: annals and the raw engine per backend.
fn throughput(report: &Report, path: &Path) -> PlotResult {
    let bars: Vec<(Backend, f64, f64)> = report
        .backends
        .iter()
        .filter_map(|b| {
            let w = b.append_batches.as_ref()?;
            Some((b.backend, w.annals.per_second, w.raw.per_second))
        })
        .collect();
    let root = SVGBackend::new(path, (800, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = bars.iter().map(|&(_, a, r)| a.max(r)).fold(1.0, f64::max) * 1.15;
    let names: Vec<String> = bars.iter().map(|b| b.0.to_string()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "1. 100-event batches, Relaxed, 1 writer (events/s)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..bars.len().max(1) as f64, 0f64..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len().max(1) * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 {
                names.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| crate::workload::human(*y))
        .draw()?;
    for (i, &(backend, annals, raw)) in bars.iter().enumerate() {
        let x = i as f64;
        let c = color(backend);
        chart.draw_series([
            Rectangle::new([(x + 0.1, 0.0), (x + 0.48, annals)], c.filled()),
            Rectangle::new([(x + 0.52, 0.0), (x + 0.9, raw)], c.mix(0.35).filled()),
        ])?;
    }
    chart
        .draw_series([Rectangle::new([(0.0, 0.0), (0.0, 0.0)], BLACK.filled())])?
        .label("annals (solid), raw engine (light)")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], BLACK.mix(0.6).filled()));
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    root.present()?;
    Ok(())
}

/// Workload 2: appends/s against writers, log-log; raw engine dashed.
fn scaling(report: &Report, path: &Path) -> PlotResult {
    let root = SVGBackend::new(path, (800, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let points = report
        .backends
        .iter()
        .flat_map(|b| &b.durable_scaling)
        .flat_map(|s| [s.annals.per_second, s.raw.per_second]);
    let (low, high) = points.fold((f64::MAX, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let low = if low == f64::MAX {
        1.0
    } else {
        (low / 2.0).max(1.0)
    };
    let most = report.settings.writers.iter().copied().max().unwrap_or(64) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "2. Durable single-event appends (appends/s) by concurrent writers",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (1f64..most * 1.2).log_scale(),
            (low..high * 2.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("writers")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| crate::workload::human(*y))
        .draw()?;
    for b in &report.backends {
        if b.durable_scaling.is_empty() {
            continue;
        }
        let c = color(b.backend);
        let annals: Vec<(f64, f64)> = b
            .durable_scaling
            .iter()
            .map(|s| (s.writers as f64, s.annals.per_second))
            .collect();
        let raw: Vec<(f64, f64)> = b
            .durable_scaling
            .iter()
            .map(|s| (s.writers as f64, s.raw.per_second))
            .collect();
        chart
            .draw_series(LineSeries::new(annals.clone(), c.stroke_width(3)))?
            .label(format!("{} annals", b.backend))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(3)));
        chart.draw_series(annals.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
        chart
            .draw_series(DashedLineSeries::new(raw, 6, 4, c.stroke_width(1)))?
            .label(format!("{} raw", b.backend))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(1)));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    root.present()?;
    Ok(())
}

/// Workload 4: p50 page latency against store size, one panel per kind.
fn page_latency(report: &Report, path: &Path) -> PlotResult {
    let root = SVGBackend::new(path, (1200, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 3));
    // Titles in the order of `PageCost::KINDS`.
    let titles = ["stream page", "log page", "tag query page"];
    for (kind, (panel, title)) in panels.iter().zip(titles).enumerate() {
        panel_latency(report, panel, title, kind)?;
    }
    root.present()?;
    Ok(())
}

fn panel_latency(
    report: &Report,
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    name: &str,
    kind: usize,
) -> PlotResult {
    let pick = |c: &PageCost| c.kinds()[kind].1.p50_us;
    let sizes = &report.settings.store_sizes;
    let smallest = sizes.first().copied().unwrap_or(1) as f64;
    let largest = sizes.last().copied().unwrap_or(10) as f64;
    let high = report
        .backends
        .iter()
        .flat_map(|b| &b.page_cost)
        .filter_map(pick)
        .fold(1.0f64, f64::max);
    let low = report
        .backends
        .iter()
        .flat_map(|b| &b.page_cost)
        .filter_map(pick)
        .fold(f64::MAX, f64::min);
    let low = if low == f64::MAX { 1.0 } else { low / 2.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(format!("4. {name}, p50 µs"), ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(
            (smallest / 1.5..largest * 1.5).log_scale(),
            (low..high * 2.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("events in store")
        .x_label_formatter(&|x| crate::workload::human(*x))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    for b in &report.backends {
        let c = color(b.backend);
        let line: Vec<(f64, f64)> = b
            .page_cost
            .iter()
            .filter_map(|p| Some((p.store_events as f64, pick(p)?)))
            .collect();
        if line.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(line.clone(), c.stroke_width(2)))?
            .label(b.backend.to_string())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(line.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}
