//! `paths.svg`/`paths.png`: contours of the problem with every run's trajectory.
//!
//! Each run is drawn in its own color, clipped to the view box (a run that leaves the box is
//! cut at its edge, and its legend entry says so); the start is a black ring, each run's end a
//! filled dot, known minima black crosses and saddle points black triangles.

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::clip::{clip_polyline, split_sharp_turns};
use super::contour::{contour_lines, levels, Grid};
use super::{err, run_color, Figure};
use crate::problem::{Point, Problem, ViewBox};
use crate::run::Trace;
use crate::summary::RunSummary;

/// The chart of a paths figure.
type Plane<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Grid resolution of the contours.
const GRID: usize = 160;
/// Runs with more points than this are drawn without a dot per step.
const MAX_DOTS: usize = 500;
/// Number of contour levels.
const LEVELS: usize = 16;

/// The paths figure of one experiment.
pub struct PathsFigure<'a> {
    /// Title above the plot.
    pub title: &'a str,
    /// The problem (contours, minima).
    pub problem: &'a dyn Problem,
    /// The box drawn.
    pub view: ViewBox,
    /// The common start.
    pub start: Point,
    /// One trace per run.
    pub traces: &'a [Trace],
    /// One summary per run (legend notes).
    pub summaries: &'a [RunSummary],
}

/// A contour level's color: dark slate for the lowest levels, light grey for the highest.
fn level_color(t: f64) -> RGBColor {
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(mix(60.0, 205.0), mix(80.0, 208.0), mix(130.0, 214.0))
}

/// Legend text of a run: its name and its notes.
pub(crate) fn legend_label(summary: &RunSummary) -> String {
    let notes = summary.notes();
    if notes.is_empty() {
        summary.name.clone()
    } else {
        format!("{} ({})", summary.name, notes.join("; "))
    }
}

impl PathsFigure<'_> {
    fn draw_contours<DB: DrawingBackend>(&self, chart: &mut Plane<'_, DB>) -> Result<(), String> {
        let view = self.view;
        let grid = Grid::sample(self.problem, &view, GRID, GRID);
        let levels = levels(&grid, self.problem.min_value(), LEVELS);
        let n = levels.len().max(2) as f64 - 1.0;
        for (k, level) in levels.iter().enumerate() {
            let color = level_color(k as f64 / n);
            let lines = contour_lines(&grid, *level);
            chart
                .draw_series(lines.into_iter().map(|l| PathElement::new(l, color)))
                .map_err(err)?;
        }
        Ok(())
    }

    fn draw_landmarks<DB: DrawingBackend>(&self, chart: &mut Plane<'_, DB>) -> Result<(), String> {
        let view = self.view;
        let inside = |p: &Point| view.contains(*p);
        let minima: Vec<Point> = self.problem.minima().into_iter().filter(inside).collect();
        if !minima.is_empty() {
            chart
                .draw_series(
                    minima
                        .iter()
                        .map(|m| Cross::new((m[0], m[1]), 7, BLACK.stroke_width(3))),
                )
                .map_err(err)?
                .label("minimum")
                .legend(|(x, y)| Cross::new((x + 12, y), 6, BLACK.stroke_width(3)));
        }
        let saddles: Vec<Point> = self.problem.saddles().into_iter().filter(inside).collect();
        if !saddles.is_empty() {
            chart
                .draw_series(
                    saddles
                        .iter()
                        .map(|s| TriangleMarker::new((s[0], s[1]), 8, BLACK.filled())),
                )
                .map_err(err)?
                .label("saddle point")
                .legend(|(x, y)| TriangleMarker::new((x + 12, y), 7, BLACK.filled()));
        }
        if inside(&self.start) {
            chart
                .draw_series(std::iter::once(Circle::new(
                    (self.start[0], self.start[1]),
                    7,
                    BLACK.stroke_width(2),
                )))
                .map_err(err)?
                .label("start")
                .legend(|(x, y)| Circle::new((x + 12, y), 6, BLACK.stroke_width(2)));
        }
        Ok(())
    }

    fn draw_run<DB: DrawingBackend>(
        &self,
        chart: &mut Plane<'_, DB>,
        index: usize,
    ) -> Result<(), String> {
        let view = self.view;
        let trace = &self.traces[index];
        let color = run_color(index);
        let line = color.stroke_width(2);
        let (w, h) = (view.x[1] - view.x[0], view.y[1] - view.y[0]);
        let unit = |(x, y): (f64, f64)| ((x - view.x[0]) / w, (y - view.y[0]) / h);
        let pieces: Vec<Vec<(f64, f64)>> = clip_polyline(&trace.points, &view)
            .iter()
            .flat_map(|piece| split_sharp_turns(piece, unit))
            .collect();
        let empty = Vec::new();
        let shown: Vec<&Vec<(f64, f64)>> = if pieces.is_empty() {
            vec![&empty] // keep the legend entry of a run that never enters the view
        } else {
            pieces.iter().collect()
        };
        let mut first = true;
        for piece in shown {
            let anno = chart
                .draw_series(std::iter::once(PathElement::new(piece.clone(), line)))
                .map_err(err)?;
            if first {
                anno.label(legend_label(&self.summaries[index]))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], line));
                first = false;
            }
        }
        // A dot per step shows the step sizes; long runs get the line alone.
        let dots = trace
            .points
            .iter()
            .filter(|p| trace.points.len() <= MAX_DOTS && view.contains(**p));
        chart
            .draw_series(dots.map(|p| Circle::new((p[0], p[1]), 2, color.filled())))
            .map_err(err)?;
        let end = trace.points[trace.points.len() - 1];
        if view.contains(end) {
            chart
                .draw_series([
                    Circle::new((end[0], end[1]), 6, color.filled()),
                    Circle::new((end[0], end[1]), 6, BLACK.stroke_width(1)),
                ])
                .map_err(err)?;
        }
        Ok(())
    }
}

impl Figure for PathsFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (800, 640)
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let view = self.view;
        let [x_name, y_name] = self.problem.axis_names();
        let mut chart = ChartBuilder::on(&root)
            .caption(self.title, ("sans-serif", 22))
            .margin(14)
            .x_label_area_size(42)
            .y_label_area_size(56)
            .build_cartesian_2d(view.x[0]..view.x[1], view.y[0]..view.y[1])
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(x_name)
            .y_desc(y_name)
            .axis_desc_style(("sans-serif", 16))
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(err)?;
        self.draw_contours(&mut chart)?;
        for index in 0..self.traces.len() {
            self.draw_run(&mut chart, index)?;
        }
        self.draw_landmarks(&mut chart)?;
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
