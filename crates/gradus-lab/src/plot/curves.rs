//! `loss.svg`/`.png` and `steps.svg`/`.png`: one value per step for every run.
//!
//! The loss figure shows `f − f*` on a log scale when the minimum value `f*` is known (gaps
//! below the smallest positive one are drawn at it), else `f` on a linear scale; points whose
//! run is outside the view box are left out, so a run that flies off does not flatten the
//! others. The steps figure shows the effective step size per coordinate, `|Δθᵢ| / |gᵢ|`
//! (geometric mean of the two; for SGD the learning rate, for AdaGrad a falling curve), on a
//! log scale.

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::clip::split_sharp_turns;
use super::paths::legend_label;
use super::{err, run_color, Figure};
use crate::problem::{Point, Problem, ViewBox};
use crate::run::Trace;
use crate::summary::RunSummary;

/// One run's curve: a value per step, non-finite values breaking the line.
#[derive(Debug, Clone)]
pub struct Curve {
    /// Legend text.
    pub label: String,
    /// The values, `values[k]` at step `k`.
    pub values: Vec<f64>,
}

/// A chart of one value per step for every run.
#[derive(Debug, Clone)]
pub struct CurveFigure {
    /// Title above the plot.
    pub title: String,
    /// Y axis description.
    pub y_desc: String,
    /// Log (else linear) y axis.
    pub log: bool,
    /// One curve per run, in run order (colors follow the order).
    pub curves: Vec<Curve>,
}

impl CurveFigure {
    /// The loss figure of an experiment's traces (points outside `view` left out).
    pub fn loss(
        title: &str,
        problem: &dyn Problem,
        view: &ViewBox,
        traces: &[Trace],
        summaries: &[RunSummary],
    ) -> Self {
        let base = problem.min_value();
        let curves = traces
            .iter()
            .zip(summaries)
            .map(|(t, s)| Curve {
                label: legend_label(s),
                values: t
                    .points
                    .iter()
                    .zip(&t.loss)
                    .map(|(p, f)| match (view.contains(*p), base) {
                        (false, _) => f64::NAN,
                        (true, Some(b)) => f - b,
                        (true, None) => *f,
                    })
                    .collect(),
            })
            .collect();
        let y_desc = if base.is_some() {
            "loss − minimum"
        } else {
            "loss"
        };
        CurveFigure {
            title: format!("{title}: loss"),
            y_desc: y_desc.into(),
            log: base.is_some(),
            curves,
        }
    }

    /// The effective-step figure: at every step `k >= 1`, the geometric mean over the
    /// coordinates with a nonzero gradient of `|θₖ,ᵢ − θₖ₋₁,ᵢ| / |gₖ,ᵢ|` (for SGD the learning
    /// rate; for AdaGrad `lr / (√Gᵢ + eps)`, which never grows).
    pub fn steps(title: &str, traces: &[Trace], summaries: &[RunSummary]) -> Self {
        let curves = traces
            .iter()
            .zip(summaries)
            .map(|(t, s)| {
                let mut values = vec![f64::NAN];
                values.extend(
                    t.points
                        .windows(2)
                        .zip(&t.grads)
                        .map(|(w, g)| effective_step(w[0], w[1], *g)),
                );
                Curve {
                    label: legend_label(s),
                    values,
                }
            })
            .collect();
        CurveFigure {
            title: format!("{title}: effective step"),
            y_desc: "|Δθᵢ| / |gᵢ| (geometric mean)".into(),
            log: true,
            curves,
        }
    }

    fn x_max(&self) -> usize {
        self.curves
            .iter()
            .map(|c| c.values.len())
            .max()
            .unwrap_or(1)
            .saturating_sub(1)
            .max(1)
    }

    /// The values drawn: finite, and positive on a log axis.
    fn drawable(&self, v: f64) -> bool {
        v.is_finite() && (!self.log || v > 0.0)
    }

    /// The y range: the drawable values, padded (multiplicatively on a log axis).
    pub fn y_range(&self) -> (f64, f64) {
        let values = self.curves.iter().flat_map(|c| c.values.iter().copied());
        let (lo, hi) = values
            .filter(|v| self.drawable(*v))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
        match (lo <= hi, self.log) {
            (false, true) => (1e-16, 1.0),
            (false, false) => (0.0, 1.0),
            (true, true) => {
                let lo = lo.max(hi * 1e-30);
                (lo / 2.0, hi * 2.0)
            }
            (true, false) => {
                let pad = if hi > lo {
                    (hi - lo) * 0.05
                } else {
                    lo.abs().max(1.0) * 0.1
                };
                (lo - pad, hi + pad)
            }
        }
    }

    fn draw_on<DB, Y>(&self, root: DrawingArea<DB, Shift>, y: Y) -> Result<(), String>
    where
        DB: DrawingBackend,
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        root.fill(&WHITE).map_err(err)?;
        let (lo, hi) = self.y_range();
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, ("sans-serif", 22))
            .margin(14)
            .x_label_area_size(42)
            .y_label_area_size(80)
            .build_cartesian_2d(0..self.x_max(), y)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc(self.y_desc.as_str())
            .y_label_formatter(&|v| tick_label(*v))
            .axis_desc_style(("sans-serif", 16))
            .label_style(("sans-serif", 14))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        for (i, curve) in self.curves.iter().enumerate() {
            let style = run_color(i).stroke_width(2);
            let points = curve.values.iter().enumerate().map(|(k, &v)| {
                // Exact convergence (a zero gap) sits on the floor of a log axis.
                let v = if self.log && v.is_finite() && v <= lo {
                    lo
                } else {
                    v
                };
                (k, v)
            });
            let (x_max, (lo_y, hi_y)) = (self.x_max() as f64, (lo, hi));
            let log = self.log;
            let unit = move |(k, v): (f64, f64)| {
                let y = if log {
                    (v.ln() - lo_y.ln()) / (hi_y.ln() - lo_y.ln())
                } else {
                    (v - lo_y) / (hi_y - lo_y)
                };
                (k / x_max, y)
            };
            let pieces = segments(points, |v| self.drawable(v))
                .into_iter()
                .flat_map(|seg| {
                    let as_f64: Vec<(f64, f64)> = seg.iter().map(|&(k, v)| (k as f64, v)).collect();
                    let mut split = split_sharp_turns(&as_f64, unit);
                    if split.is_empty() {
                        split.push(Vec::new());
                    }
                    split
                })
                .map(|piece| {
                    piece
                        .into_iter()
                        .map(|(k, v)| (k as usize, v))
                        .collect::<Vec<_>>()
                });
            let mut first = true;
            for segment in pieces {
                let anno = chart
                    .draw_series(LineSeries::new(segment, style))
                    .map_err(err)?;
                if first {
                    anno.label(curve.label.as_str())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
                    first = false;
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.88))
            .border_style(BLACK.mix(0.4))
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
        Ok(())
    }
}

/// The geometric mean of `|bᵢ − aᵢ| / |gᵢ|` over the coordinates where `gᵢ != 0` (NaN when
/// there is none).
pub fn effective_step(a: Point, b: Point, g: Point) -> f64 {
    let logs: Vec<f64> = (0..2)
        .filter(|&i| g[i] != 0.0)
        .map(|i| ((b[i] - a[i]).abs() / g[i].abs()).ln())
        .collect();
    if logs.is_empty() {
        f64::NAN
    } else {
        (logs.iter().sum::<f64>() / logs.len() as f64).exp()
    }
}

/// A short tick label: `0.25`, `120`, `1e-11`, `2.5e6`.
pub fn tick_label(v: f64) -> String {
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if v == 0.0 {
        "0".into()
    } else if (1e-3..1e4).contains(&v.abs()) {
        trim(format!("{v:.3}"))
    } else {
        let text = format!("{v:.1e}");
        match text.split_once('e') {
            Some((mantissa, exponent)) => format!("{}e{exponent}", trim(mantissa.to_string())),
            None => text,
        }
    }
}

/// Splits `(step, value)` points into runs of drawable values (at least one point, so that
/// every run keeps its legend entry).
fn segments(
    points: impl Iterator<Item = (usize, f64)>,
    drawable: impl Fn(f64) -> bool,
) -> Vec<Vec<(usize, f64)>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for (k, v) in points {
        if drawable(v) {
            current.push((k, v));
        } else if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    if out.is_empty() {
        out.push(Vec::new());
    }
    out
}

impl Figure for CurveFigure {
    fn size(&self) -> (u32, u32) {
        (800, 500)
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String> {
        let (lo, hi) = self.y_range();
        if self.log {
            self.draw_on(root, (lo..hi).log_scale())
        } else {
            self.draw_on(root, lo..hi)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(0.25), "0.25");
        assert_eq!(tick_label(120.0), "120");
        assert_eq!(tick_label(1e-11), "1e-11");
        assert_eq!(tick_label(0.999_999_999_999_8e-6), "1e-6");
        assert_eq!(tick_label(-2.5e6), "-2.5e6");
    }
}
