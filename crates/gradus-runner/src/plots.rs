//! Curves of a run folder, drawn with plotters: `loss.svg`/`.png`, `accuracy.svg`/`.png`,
//! `lr.svg`/`.png` (the learning rate at the end of each epoch) and `grad_norm.svg`/`.png` (the
//! epoch's mean gradient norm before clipping).
//!
//! Files are written by [`gradus_lab::plot::write_figure`], the one renderer of the workspace:
//! text in the PNG files is rasterized from the DejaVu Sans font shipped in `gradus-lab`
//! (plotters' `ab_glyph` backend), so rendering never depends on the system's fontconfig or
//! freetype, and every file is written atomically (rendered in memory, then a temp file and a
//! rename), so a reader never sees half a plot.

use std::path::{Path, PathBuf};

use gradus_core::{Error, Result};
use gradus_lab::plot::{write_figure, Figure};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use crate::metrics::EpochMetrics;

/// Size in pixels of every plot (SVG view box and PNG image).
pub const PLOT_SIZE: (u32, u32) = (800, 500);

/// Distinct line colors (Tableau 10), one per run in `gradus compare`: the lab's palette.
pub(crate) use gradus_lab::plot::PALETTE;

/// One curve of a chart: `(epoch, value)` points, non-finite values allowed (they break the
/// line instead of being drawn).
pub(crate) struct Series {
    /// Legend text.
    pub label: String,
    /// Points in epoch order.
    pub points: Vec<(usize, f64)>,
    /// Line color.
    pub color: RGBColor,
    /// Dashed line (training curves next to solid validation curves).
    pub dashed: bool,
}

/// A line chart of per-epoch values.
pub(crate) struct Chart {
    /// Title drawn above the plot.
    pub caption: String,
    /// Y axis description.
    pub y_desc: &'static str,
    /// The curves.
    pub series: Vec<Series>,
    /// Where the legend goes (away from where the curves usually are).
    pub legend: SeriesLabelPosition,
}

/// The plots [`write_plots`] may write, by file stem, in the order a report shows them.
pub const PLOT_STEMS: [&str; 4] = ["loss", "accuracy", "lr", "grad_norm"];

/// Writes into `dir`: `loss.svg`/`loss.png` (training and validation loss per epoch), when any
/// epoch has an accuracy `accuracy.svg`/`accuracy.png`, `lr.svg`/`lr.png` (learning rate of
/// group 0 at the end of each epoch) and `grad_norm.svg`/`grad_norm.png` (mean global L2
/// gradient norm of the epoch's updates, before clipping). `title` heads every plot (the run's
/// name). Non-finite values are left out of the curves. Returns the stems written, in
/// [`PLOT_STEMS`] order.
///
/// # Errors
/// [`Error::Unsupported`] when `metrics` is empty; [`Error::Io`] naming the file when one
/// cannot be rendered or written.
pub fn write_plots(dir: &Path, metrics: &[EpochMetrics], title: &str) -> Result<Vec<&'static str>> {
    if metrics.is_empty() {
        return Err(Error::Unsupported(format!(
            "cannot plot metrics into {}: no epochs recorded",
            dir.display()
        )));
    }
    let caption = |what: &str| {
        if title.is_empty() {
            what.to_string()
        } else {
            format!("{title}: {what}")
        }
    };
    let column = |f: fn(&EpochMetrics) -> Option<f64>| -> Option<Vec<(usize, f64)>> {
        metrics.iter().any(|m| f(m).is_some()).then(|| {
            metrics
                .iter()
                .map(|m| (m.epoch, f(m).unwrap_or(f64::NAN)))
                .collect()
        })
    };
    let (train, val) = (PALETTE[0], PALETTE[1]);
    let series = |train_col: Option<Vec<(usize, f64)>>, val_col: Option<Vec<_>>, what: &str| {
        let mut out = Vec::new();
        if let Some(points) = train_col {
            out.push(Series {
                label: format!("train {what}"),
                points,
                color: train,
                dashed: false,
            });
        }
        if let Some(points) = val_col {
            out.push(Series {
                label: format!("val {what}"),
                points,
                color: val,
                dashed: false,
            });
        }
        out
    };

    let loss = Chart {
        caption: caption("loss"),
        y_desc: "loss",
        series: series(
            column(|m| Some(m.train_loss)),
            column(|m| m.val_loss),
            "loss",
        ),
        legend: SeriesLabelPosition::UpperRight,
    };
    write_chart(dir, "loss", &loss)?;
    let mut written = vec!["loss"];

    let accuracy = series(
        column(|m| m.train_accuracy),
        column(|m| m.val_accuracy),
        "accuracy",
    );
    if !accuracy.is_empty() {
        let chart = Chart {
            caption: caption("accuracy"),
            y_desc: "accuracy",
            series: accuracy,
            legend: SeriesLabelPosition::LowerRight,
        };
        write_chart(dir, "accuracy", &chart)?;
        written.push("accuracy");
    }
    for (stem, what, pick) in [
        (
            "lr",
            "learning rate",
            (|m: &EpochMetrics| m.lr) as fn(&EpochMetrics) -> f64,
        ),
        ("grad_norm", "gradient norm", |m| m.grad_norm),
    ] {
        let chart = Chart {
            caption: caption(what),
            y_desc: what_axis(stem),
            series: vec![Series {
                label: what.to_string(),
                points: metrics.iter().map(|m| (m.epoch, pick(m))).collect(),
                color: PALETTE[2],
                dashed: false,
            }],
            legend: SeriesLabelPosition::UpperRight,
        };
        write_chart(dir, stem, &chart)?;
        written.push(stem);
    }
    Ok(written)
}

fn what_axis(stem: &str) -> &'static str {
    match stem {
        "lr" => "learning rate (end of epoch)",
        _ => "mean L2 norm before clipping",
    }
}

/// Renders `chart` to `<dir>/<stem>.svg` and `<dir>/<stem>.png`; returns both paths.
pub(crate) fn write_chart(dir: &Path, stem: &str, chart: &Chart) -> Result<Vec<PathBuf>> {
    write_figure(dir, stem, &ChartFigure(chart))?;
    Ok(vec![
        dir.join(format!("{stem}.svg")),
        dir.join(format!("{stem}.png")),
    ])
}

/// A chart as the lab's renderer draws it, at [`PLOT_SIZE`].
struct ChartFigure<'a>(&'a Chart);

impl Figure for ChartFigure<'_> {
    fn size(&self) -> (u32, u32) {
        PLOT_SIZE
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        draw(root, self.0)
    }
}

/// Splits points into runs of finite values: a NaN or infinity breaks the line.
fn segments(points: &[(usize, f64)]) -> Vec<Vec<(usize, f64)>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for &(x, y) in points {
        if y.is_finite() {
            current.push((x, y));
        } else if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The x range: the epochs, widened by one each side when there is a single epoch.
fn x_range(chart: &Chart) -> std::ops::Range<usize> {
    let epochs = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0));
    let (lo, hi) = epochs.fold((usize::MAX, 0), |(lo, hi), x| (lo.min(x), hi.max(x)));
    if lo > hi {
        0..1
    } else if lo == hi {
        lo.saturating_sub(1)..hi.saturating_add(1)
    } else {
        lo..hi
    }
}

/// The y range: the finite values with 5% padding; a fixed span around a single value.
fn y_range(chart: &Chart) -> std::ops::Range<f64> {
    let values = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        return 0.0..1.0;
    }
    let span = hi - lo;
    let pad = if span > 0.0 && span.is_finite() {
        span * 0.05
    } else if span == 0.0 {
        (lo.abs() * 0.1).max(1e-3)
    } else {
        0.0 // span overflows f64: no room to pad
    };
    let (a, b) = (lo - pad, hi + pad);
    if a.is_finite() && b.is_finite() {
        a..b
    } else {
        lo..hi
    }
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    chart: &Chart,
) -> std::result::Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let mut ctx = ChartBuilder::on(&root)
        .caption(&chart.caption, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range(chart), y_range(chart))
        .map_err(err)?;
    ctx.configure_mesh()
        .x_desc("epoch")
        .y_desc(chart.y_desc)
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;

    for s in &chart.series {
        let style = ShapeStyle {
            color: s.color.to_rgba(),
            filled: false,
            stroke_width: 2,
        };
        let mut segs = segments(&s.points);
        if segs.is_empty() {
            segs.push(Vec::new()); // keep the legend entry of an all-NaN series
        }
        for (i, seg) in segs.iter().enumerate() {
            let anno = if s.dashed {
                ctx.draw_series(DashedLineSeries::new(seg.iter().copied(), 7, 5, style))
            } else {
                ctx.draw_series(LineSeries::new(seg.iter().copied(), style))
            }
            .map_err(err)?;
            if i == 0 {
                let dashed = s.dashed;
                anno.label(s.label.as_str()).legend(move |(x, y)| {
                    let (size, gap) = if dashed { (6, 4) } else { (30, 0) };
                    DashedPathElement::new(vec![(x, y), (x + 24, y)], size, gap, style)
                });
            }
            // A lone point (one epoch, or between NaNs) draws no line: mark it.
            if seg.len() == 1 {
                ctx.draw_series(seg.iter().map(|&p| Circle::new(p, 3, style.filled())))
                    .map_err(err)?;
            }
        }
    }
    ctx.configure_series_labels()
        .position(chart.legend.clone())
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(points: Vec<(usize, f64)>) -> Chart {
        Chart {
            caption: String::new(),
            y_desc: "loss",
            series: vec![Series {
                label: "a".into(),
                points,
                color: PALETTE[0],
                dashed: false,
            }],
            legend: SeriesLabelPosition::UpperRight,
        }
    }

    #[test]
    fn segments_break_at_non_finite_values() {
        let pts = vec![
            (1, 1.0),
            (2, f64::NAN),
            (3, 2.0),
            (4, 3.0),
            (5, f64::INFINITY),
        ];
        assert_eq!(
            segments(&pts),
            vec![vec![(1, 1.0)], vec![(3, 2.0), (4, 3.0)]]
        );
        assert!(segments(&[(1, f64::NAN)]).is_empty());
    }

    #[test]
    fn ranges_cover_edge_cases() {
        assert_eq!(x_range(&chart(vec![(1, 0.5)])), 0..2);
        assert_eq!(x_range(&chart(vec![])), 0..1);
        assert_eq!(x_range(&chart(vec![(1, 0.5), (4, 0.1)])), 1..4);
        let r = y_range(&chart(vec![(1, 0.5)]));
        assert!(r.start < 0.5 && r.end > 0.5);
        assert_eq!(y_range(&chart(vec![(1, f64::NAN)])), 0.0..1.0);
        let r = y_range(&chart(vec![(1, -f64::MAX), (2, f64::MAX)]));
        assert!(r.start.is_finite() && r.end.is_finite() && r.start < r.end);
        let r = y_range(&chart(vec![(1, 1.0), (2, 3.0)]));
        assert!((r.start - 0.9).abs() < 1e-12 && (r.end - 3.1).abs() < 1e-12);
    }
}
